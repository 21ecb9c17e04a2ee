"""TypeScript declarations of the wire document (``wire_schema.wire_document``).

:func:`typescript_module` renders every ``$defs`` entry as an exported type alias, and
``x-calls`` / ``x-pushes`` as maps from each Socket.IO event name to its payload, ack and
push types, for ``packages/client-js/src/generated/wire.ts`` (written by
``scripts/gen_wire_types.py``, checked by its drift test). It reads the subset of JSON Schema
that document uses: ``type`` (one or a list), ``properties`` / ``required``,
``additionalProperties``, ``items``, ``$ref``, ``const``, ``enum``, ``anyOf`` / ``oneOf``;
value bounds (``minimum``, ``pattern``, ``format``, …) stay in the schema.
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


def _members(schema: Schema, depth: int) -> list[str]:
    """The lines inside ``{ … }`` for an object schema."""
    pad = _INDENT * depth
    required = set(schema.get("required", []))
    lines: list[str] = []
    for name, sub in schema.get("properties", {}).items():
        lines += _doc(sub.get("description"), depth)
        optional = "" if name in required else "?"
        lines.append(f"{pad}{_key(name)}{optional}: {ts_type(sub, depth)};")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        lines.append(f"{pad}[key: string]: {ts_type(extra, depth)};")
    return lines


def _object(schema: Schema, depth: int) -> str:
    if "properties" not in schema:
        extra = schema.get("additionalProperties")
        value = ts_type(extra, depth) if isinstance(extra, dict) else "unknown"
        return f"{{ [key: string]: {value} }}"
    inner = _members(schema, depth + 1)
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


def _definition(name: str, schema: Schema) -> list[str]:
    # Type aliases, not interfaces: an object type alias is assignable to an index
    # signature (a typed event's data to the generic event's `{ [key: string]: unknown }`).
    return [*_doc(schema.get("description"), 0), f"export type {name} = {ts_type(schema)};"]


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
    for name, schema in document["$defs"].items():
        lines += [*_definition(name, schema), ""]
    lines += _calls(document.get("x-calls", {}))
    lines += _pushes(document.get("x-pushes", {}))
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


__all__ = ["ts_type", "typescript_module"]
