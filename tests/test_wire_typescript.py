"""TypeScript rendering of the wire schema (jobspine_shared.wire_typescript): each JSON Schema
construct the wire document uses becomes the TypeScript type a client author would write."""

from __future__ import annotations

import pytest

from jobspine_shared.wire_typescript import Schema, ts_type, typescript_module


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
            '{\n  a: number;\n  "b-c"?: unknown;\n}',
        ),
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
    assert "/** A `ping`. */\nexport type Ping = {\n  n: number;\n};" in module
    assert "export type UserCalls = {\n  ping: { payload: Ping; ack: Ping };\n};" in module
    assert "export type WorkersPushes = {\n  pong: Ping;\n};" in module
    assert module.endswith("};\n")
