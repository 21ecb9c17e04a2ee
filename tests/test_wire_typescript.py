"""TypeScript rendering of the wire schema (jobspine_shared.wire_typescript): each JSON Schema
construct the wire document uses becomes the TypeScript type a client author would write."""

from __future__ import annotations

import pytest

from jobspine_shared.wire_typescript import Schema, bases, ts_type, typescript_module


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "format": "date-time"}, "string"),
        ({"type": ["string", "null"], "maxLength": 256}, "string | null"),
        ({"type": "integer", "minimum": 0}, "number"),
        ({"type": "boolean", "const": True}, "true"),
        ({"type": "string", "enum": ["user", "stalled"]}, '"user" | "stalled"'),
        ({"$ref": "#/$defs/Job"}, "Job"),
        ({"anyOf": [{"$ref": "#/$defs/JobError"}, {"type": "null"}]}, "JobError | null"),
        ({"type": "array", "items": {"type": "string"}}, "Array<string>"),
        ({"type": "object"}, "{ [key: string]: unknown }"),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            "{ [key: string]: number }",
        ),
        ({}, "unknown"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b-c": {}},
                "required": ["a"],
            },
            '{ a: number; "b-c"?: unknown }',
        ),
        (
            {"type": "object", "properties": {"a": {"type": "number", "description": "A."}}},
            "{\n  /** A. */\n  a?: number;\n}",
        ),
        (
            {"type": "object", "properties": {f"field_{n}": {"type": "string"} for n in range(4)}},
            "{\n" + "".join(f"  field_{n}?: string;\n" for n in range(4)) + "}",
        ),
        ({"type": "object", "properties": {}}, "{}"),
    ],
)
def test_each_construct_renders(schema: Schema, expected: str) -> None:
    assert ts_type(schema) == expected


def test_a_document_renders_aliases_docs_and_call_maps() -> None:
    document: Schema = {
        "$defs": {
            "Ping": {
                "type": "object",
                "description": "A ``ping``.",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
        },
        "x-calls": {"/": {"ping": {"payload": "Ping", "ack": "Ping"}}},
        "x-pushes": {"/workers": {"pong": "Ping"}},
    }
    module = typescript_module(document)
    assert "/** A `ping`. */\nexport type Ping = { n: number };" in module
    assert "export type UserCalls = {\n  ping: { payload: Ping; ack: Ping };\n};" in module
    assert "export type WorkersPushes = {\n  pong: Ping;\n};" in module
    assert module.endswith("};\n")


def _record(**members: Schema) -> Schema:
    return {"type": "object", "properties": members, "required": list(members)}


TEXT: Schema = {"type": "string"}
HEADER = {"job_id": TEXT, "user_id": TEXT, "seq": {"type": "integer"}, "at": TEXT}


def test_a_definition_that_restates_another_is_written_as_it_with_changes() -> None:
    """The members that differ are omitted from the base and stated again; none of the
    shared ones is repeated; a record sharing fewer than four stays as it is."""
    document: Schema = {
        "$defs": {
            "Job": _record(**HEADER, tags=TEXT),
            "JobV1": _record(**HEADER, version={"const": 1}),
            "Small": _record(job_id=TEXT, seq={"type": "integer"}),
        },
    }
    assert bases(document["$defs"]) == {"JobV1": "Job"}
    module = typescript_module(document)
    assert 'export type JobV1 = Omit<Job, "tags"> & {\n  version: 1;\n};' in module
    assert module.count("job_id: string;") == 2  # Job's and Small's


def test_definitions_that_replace_the_same_members_share_one_generic() -> None:
    document: Schema = {
        "$defs": {
            "Event": _record(**HEADER, type=TEXT, data={"type": "object"}),
            "PingEvent": _record(**HEADER, type={"const": "ping"}, data={"$ref": "#/$defs/P"}),
            "PongEvent": _record(**HEADER, type={"const": "pong"}, data={"type": "null"}),
        },
    }
    module = typescript_module(document)
    generic = 'export type EventWith<Type, Data> = Omit<Event, "type" | "data"> & {\n'
    assert generic + "  type: Type;\n  data: Data;\n};" in module
    assert 'export type PingEvent = EventWith<"ping", P>;' in module
    assert 'export type PongEvent = EventWith<"pong", null>;' in module
    assert module.count("job_id: string;") == 1
