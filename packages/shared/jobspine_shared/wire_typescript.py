"""TypeScript declarations of the wire document (``wire_schema.wire_document``).

:func:`typescript_module` renders every ``$defs`` entry as an exported type alias, and
``x-calls`` / ``x-pushes`` as maps from each Socket.IO event name to its payload, ack and
push types, for ``packages/client-js/src/generated/wire.ts`` (written by
``scripts/gen_wire_types.py``, checked by its drift test). It reads the subset of JSON Schema
that document uses: ``type`` (one or a list), ``properties`` / ``required``,
``additionalProperties``, ``items``, ``$ref``, ``const``, ``enum``, ``anyOf`` / ``oneOf``;
value bounds (``minimum``, ``pattern``, ``format``, …) stay in the schema.

A definition that restates most members of another (a typed event those of ``Event``, the v1
snapshot those of ``Job``) is written as that one with its changes,
``Omit<Base, "changed" | "dropped"> & { changed; added }``, not repeated member by member;
when several replace the same members and only those, through one generic
(``CancelledEvent = EventWith<"job:cancelled", CancelledData>``).
"""

from __future__ import annotations

import json
import re
from typing import Any

Schema = dict[str, Any]

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_INDENT = "  "
_SCALARS = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "null": "null",
}


#: An object type without member docs is written on one line up to this long.
MAX_INLINE_OBJECT = 60


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)


def _doc(text: str | None, depth: int) -> list[str]:
    if not text:
        return []
    pad = _INDENT * depth
    clean = " ".join(text.replace("``", "`").replace("*/", "* /").split())
    return [f"{pad}/** {clean} */"]


def _union(parts: list[str]) -> str:
    unique = list(dict.fromkeys(parts))
    return " | ".join(unique) if unique else "never"


def _properties(schema: Schema, depth: int) -> dict[str, list[str]]:
    """Each property's lines (its doc comment, then its member) inside ``{ … }``."""
    pad = _INDENT * depth
    required = set(schema.get("required", []))
    members: dict[str, list[str]] = {}
    for name, sub in schema.get("properties", {}).items():
        optional = "" if name in required else "?"
        member = f"{pad}{_key(name)}{optional}: {ts_type(sub, depth)};"
        members[name] = [*_doc(sub.get("description"), depth), member]
    return members


def _members(schema: Schema, depth: int) -> list[str]:
    """The lines inside ``{ … }`` for an object schema."""
    lines = [line for member in _properties(schema, depth).values() for line in member]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        lines.append(f"{_INDENT * depth}[key: string]: {ts_type(extra, depth)};")
    return lines


def _object(schema: Schema, depth: int) -> str:
    if "properties" not in schema:
        extra = schema.get("additionalProperties")
        value = ts_type(extra, depth) if isinstance(extra, dict) else "unknown"
        return f"{{ [key: string]: {value} }}"
    inner = _members(schema, depth + 1)
    if not inner:
        return "{}"
    one_line = "{ " + "; ".join(line.strip().removesuffix(";") for line in inner) + " }"
    documented = any(line.lstrip().startswith("/**") for line in inner)
    if len(one_line) <= MAX_INLINE_OBJECT and not documented and "\n" not in one_line:
        return one_line
    return "{\n" + "\n".join(inner) + "\n" + _INDENT * depth + "}"


def _single(kind: str, schema: Schema, depth: int) -> str:
    if kind == "object":
        return _object(schema, depth)
    if kind == "array":
        items = schema.get("items")
        item = ts_type(items, depth) if isinstance(items, dict) else "unknown"
        return f"Array<{item}>"
    return _SCALARS[kind]


def ts_type(schema: Schema, depth: int = 0) -> str:
    """The TypeScript type of ``schema`` (nested objects indented for ``depth``)."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return _union([json.dumps(value) for value in schema["enum"]])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _union([ts_type(option, depth) for option in schema[key]])
    kind = schema.get("type")
    if kind is None:
        return "unknown"
    kinds = kind if isinstance(kind, list) else [kind]
    return _union([_single(str(k), schema, depth) for k in kinds])


#: A definition is written as another with changes once it shares at least this many
#: members with it, and more than half of its own.
MIN_SHARED_MEMBERS = 4


def _record_members(schema: Schema) -> dict[str, list[str]] | None:
    """The members of a plain record (an object with properties and nothing else that
    shapes its type), or None: only those are derived from, or derived."""
    shaped = {"$ref", "const", "enum", "anyOf", "oneOf", "additionalProperties"}
    if schema.get("type") != "object" or "properties" not in schema or shaped & set(schema):
        return None
    return _properties(schema, 1)


def _shared(base: dict[str, list[str]], own: dict[str, list[str]]) -> list[str]:
    return [name for name, lines in own.items() if base.get(name) == lines]


def bases(definitions: dict[str, Schema]) -> dict[str, str]:
    """Which definition each derived one is written from: the one it shares the most
    members with (the same lines, docs included), among those not derived themselves,
    taken shortest name first (``Event`` before ``CancelledEvent``, ``Job`` before
    ``JobV1``)."""
    records = {
        name: members
        for name, schema in definitions.items()
        if (members := _record_members(schema)) is not None
    }
    roots: list[str] = []
    derived: dict[str, str] = {}
    for name in sorted(records, key=lambda n: (len(n), n)):
        own = records[name]
        shared = {root: len(_shared(records[root], own)) for root in roots}
        best = max(roots, key=lambda root: shared[root], default=None)
        if best is not None and shared[best] >= MIN_SHARED_MEMBERS and 2 * shared[best] > len(own):
            derived[name] = best
        else:
            roots.append(name)
    return derived


class _Derivation:
    """One definition as its base with changes: the base's members it replaces or drops,
    and its own members (in its order)."""

    def __init__(self, base: str, base_schema: Schema, schema: Schema) -> None:
        base_members, own = _properties(base_schema, 1), _properties(schema, 1)
        shared = set(_shared(base_members, own))
        self.base = base
        self.omitted = [name for name in base_members if name not in shared]
        self.added = {name: lines for name, lines in own.items() if name not in shared}
        required = set(schema.get("required", []))
        #: The added members are exactly the omitted ones, required and undocumented:
        #: their types are all that tells it from its siblings.
        self.replaces_only = list(self.added) == self.omitted and all(
            name in required and "description" not in schema["properties"][name]
            for name in self.added
        )
        self.arguments = [ts_type(schema["properties"][name], 1) for name in self.added]

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.base, tuple(self.omitted)

    def body(self, generic: bool) -> str:
        """``Base<…>`` through the family's generic, else ``Omit<Base, …> & { … }``."""
        if generic:
            return f"{_generic_name(self.base)}<{', '.join(self.arguments)}>"
        parts = [_omit(self.base, self.omitted) if self.omitted else self.base]
        added = [line for lines in self.added.values() for line in lines]
        if added:
            parts.append("{\n" + "\n".join(added) + "\n}")
        return " & ".join(parts)


def _omit(base: str, names: list[str]) -> str:
    return f"Omit<{base}, {' | '.join(json.dumps(name) for name in names)}>"


def _generic_name(base: str) -> str:
    return f"{base}With"


def _generic(family: _Derivation) -> list[str]:
    """The generic of a family (two or more derivations that replace the same members of
    the same base, and only those): ``EventWith<Type, Data>``."""
    parameters = ["".join(part.capitalize() for part in name.split("_")) for name in family.omitted]
    members = [
        f"{_INDENT}{_key(name)}: {kind};"
        for name, kind in zip(family.omitted, parameters, strict=True)
    ]
    head = f"export type {_generic_name(family.base)}<{', '.join(parameters)}>"
    return [
        f"/** {family.base} with its own {' and '.join(family.omitted)} (its typed kinds). */",
        f"{head} = {_omit(family.base, family.omitted)} & {{",
        *members,
        "};",
    ]


def _definitions(definitions: dict[str, Schema]) -> list[str]:
    """Every definition as an exported type alias, derived ones from their bases."""
    derivations = {
        name: _Derivation(base, definitions[base], definitions[name])
        for name, base in bases(definitions).items()
    }
    siblings: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for name, candidate in derivations.items():
        if candidate.replaces_only:
            siblings.setdefault(candidate.key, []).append(name)
    families = {key: names for key, names in siblings.items() if len(names) > 1}
    generics = {key[0]: derivations[names[0]] for key, names in families.items()}
    lines: list[str] = []
    for name, schema in definitions.items():
        # Type aliases, not interfaces: an object type alias is assignable to an index
        # signature (a typed event's data to the generic event's `{ [key: string]: unknown }`).
        derivation = derivations.get(name)
        if derivation is None:
            body = ts_type(schema)
        else:
            body = derivation.body(generic=derivation.key in families)
        lines += [*_doc(schema.get("description"), 0), f"export type {name} = {body};", ""]
        if name in generics:
            lines += [*_generic(generics[name]), ""]
    return lines


def _namespace_type(name: str) -> str:
    return "User" if name == "/" else name.strip("/").capitalize()


def _calls(calls: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    lines: list[str] = []
    for namespace, table in calls.items():
        prefix = _namespace_type(namespace)
        lines += [f"/** Calls on namespace {namespace}: payload, ack on success, ack on error. */"]
        lines += [f"export type {prefix}Calls = {{"]
        for event, parts in table.items():
            fields = "; ".join(f"{part}: {kind}" for part, kind in parts.items())
            lines.append(f"{_INDENT}{_key(event)}: {{ {fields} }};")
        lines += ["};", ""]
    return lines


def _pushes(pushes: dict[str, dict[str, str]]) -> list[str]:
    lines: list[str] = []
    for namespace, table in pushes.items():
        prefix = _namespace_type(namespace)
        lines += [f"/** What the server emits on namespace {namespace}, by event name. */"]
        lines += [f"export type {prefix}Pushes = {{"]
        lines += [f"{_INDENT}{_key(event)}: {kind};" for event, kind in table.items()]
        lines += ["};", ""]
    return lines


def typescript_module(document: Schema) -> str:
    """The whole generated ``wire.ts``."""
    lines = [
        "// Generated by scripts/gen_wire_types.py from packages/shared/schema/wire.schema.json;",
        "// do not edit. The schema holds the value bounds (ranges, patterns, formats).",
        "",
    ]
    lines += _definitions(document["$defs"])
    lines += _calls(document.get("x-calls", {}))
    lines += _pushes(document.get("x-pushes", {}))
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


__all__ = ["MIN_SHARED_MEMBERS", "bases", "ts_type", "typescript_module"]
