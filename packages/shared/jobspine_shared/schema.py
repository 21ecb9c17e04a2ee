"""JSON Schema (2020-12) of the wire types, the one source for the OpenAPI document.

The job snapshot and the event envelope are derived from the attrs classes of
:mod:`jobspine_shared.models` (so a new field appears here by itself); the answers built
around them (pages, replays, the error envelope, ...) are written out below.
:func:`wire_schemas` is the entry point: schemas keyed by name, references between them as
``#/components/schemas/<Name>`` so that an OpenAPI document can hold them unchanged.
"""

from __future__ import annotations

import enum
import types
import typing
from datetime import datetime
from typing import Any

import attrs

from jobspine_shared import checks
from jobspine_shared.errors import ErrorCode
from jobspine_shared.events import EventType
from jobspine_shared.models import (
    JOB_TYPE_PATTERN,
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_STEP_LENGTH,
    JobError,
    JobEvent,
    JobRecord,
    RetryPolicy,
)
from jobspine_shared.states import JobState

Schema = dict[str, Any]
REF_PREFIX = "#/components/schemas/"

#: attrs classes with a schema of their own, by the name other schemas refer to them with.
_NAMED: dict[type, str] = {
    JobRecord: "Job",
    JobEvent: "Event",
    JobError: "JobError",
    RetryPolicy: "RetryPolicy",
}

#: Constraints the attrs types do not carry, by class and field.
_FIELD_EXTRAS: dict[tuple[type, str], Schema] = {
    (JobRecord, "type"): {"pattern": f"^{JOB_TYPE_PATTERN.pattern}$"},
    (JobRecord, "progress"): {"minimum": 0, "maximum": 100},
    (JobRecord, "step"): {"maxLength": MAX_STEP_LENGTH},
    (JobRecord, "seq"): {"minimum": 0},
    (JobRecord, "attempt"): {"minimum": 0},
    (JobRecord, "recovery_attempts"): {"minimum": 0},
    (JobError, "message"): {"maxLength": MAX_ERROR_MESSAGE_LENGTH},
    (JobEvent, "seq"): {"minimum": 1},
}


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def _nullable(schema: Schema) -> Schema:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None], "type": [schema["type"], "null"]}
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _type_schema(hint: Any) -> Schema:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _type_schema(members[0]) if len(members) == 1 else {}
        return _nullable(inner) if len(members) < len(typing.get_args(hint)) else inner
    if hint is Any:
        return {}
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if isinstance(hint, type):
        if hint in _NAMED:
            return ref(_NAMED[hint])
        if issubclass(hint, enum.Enum):
            return {"type": "string", "enum": [str(m.value) for m in hint]}
        if issubclass(hint, bool):
            return {"type": "boolean"}
        if issubclass(hint, int):
            return {"type": "integer"}
        if issubclass(hint, float):
            return {"type": "number"}
        if issubclass(hint, str):
            return {"type": "string"}
        if issubclass(hint, datetime):
            return {"type": "string", "format": "date-time"}
    return {}


def attrs_schema(cls: type, description: str | None = None) -> Schema:
    """An object schema of an attrs class: every field is on the wire, none may be missing."""
    hints = typing.get_type_hints(cls)
    properties: Schema = {}
    for field in attrs.fields(cls):
        schema = _type_schema(hints[field.name])
        extra = _FIELD_EXTRAS.get((cls, field.name))
        if extra:
            schema = {**schema, **extra} if "type" in schema else {"allOf": [schema, extra]}
        properties[field.name] = schema
    body: Schema = {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in attrs.fields(cls)],
    }
    doc = description or (cls.__doc__ or "").strip().split("\n\n")[0]
    if doc:
        body["description"] = " ".join(doc.split())
    return body


def _object(properties: Schema, *, required: list[str] | None = None, **extra: Any) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_TIME: Schema = {"type": "string", "format": "date-time"}


def _answers() -> dict[str, Schema]:
    return {
        "Error": _object(
            {
                "code": {"type": "string", "enum": [str(c) for c in ErrorCode]},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
            required=["code", "message"],
        ),
        "ErrorEnvelope": _object(
            {"error": ref("Error")}, description="Every failure: {error: {code, message, details?}}"
        ),
        "JobPage": _object(
            {"items": {"type": "array", "items": ref("Job")}, "next_cursor": _NULLABLE_STRING},
            description="A page of jobs, newest first; next_cursor fetches the next one.",
        ),
        "Replay": _object(
            {
                "recovered": {"type": "boolean"},
                "events": {"type": "array", "items": ref("Event")},
                "job": ref("Job"),
            },
            description="Events after after_seq, or the snapshot to restart from (recovered).",
        ),
        "Checkpoint": _object(
            {
                "data": {"type": "object"},
                "saved_at": _TIME,
                "size_bytes": {"type": "integer", "minimum": 0},
                "progress": {"type": ["number", "null"]},
            }
        ),
        "RecoveryOptions": _object(
            {
                "job_id": {"type": "string"},
                "state": {"type": "string", "enum": [str(s) for s in JobState]},
                "resumable": {"type": "boolean"},
                "restartable": {"type": "boolean"},
                "checkpoint": _object(
                    {
                        "present": {"type": "boolean"},
                        "size_bytes": {"type": ["integer", "null"]},
                        "keys": {"type": "array", "items": {"type": "string"}},
                        "saved_at": {"type": ["string", "null"], "format": "date-time"},
                        "progress": {"type": ["number", "null"]},
                    }
                ),
                "recovery_attempts": {"type": "integer"},
                "max_recovery_attempts": {"type": "integer"},
                "recovery_attempts_left": {"type": "integer"},
            }
        ),
        "AuditEntry": _object(
            {
                "action": {"type": "string"},
                "actor": {"type": "string"},
                "at": _TIME,
                "details": {"type": "object"},
            }
        ),
        "AuditPage": _object(
            {
                "items": {"type": "array", "items": ref("AuditEntry")},
                "next_cursor": _NULLABLE_STRING,
            },
            required=["items"],
        ),
        "Stats": _object(
            {
                "by_state": _object({str(s): {"type": "integer", "minimum": 0} for s in JobState}),
                "total": {"type": "integer", "minimum": 0},
            }
        ),
        "SupervisorStatus": {"type": "object", "description": "The supervisor's last scans."},
        "RecoveryCheck": _object({"recovered": {"type": "boolean"}, "job": ref("Job")}),
        "Health": _object({"status": {"type": "string", "const": "ok"}}),
        "Readiness": _object(
            {"status": {"type": "string"}, "checks": {"type": "array", "items": {"type": "string"}}}
        ),
        "CreateJob": _object(
            {
                "type": {"type": "string", "pattern": f"^{JOB_TYPE_PATTERN.pattern}$"},
                "input": {"type": "object"},
                "priority": {
                    "type": "integer",
                    "minimum": checks.MIN_PRIORITY,
                    "maximum": checks.MAX_PRIORITY,
                },
                "run_at": {"type": ["string", "null"], "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": checks.MAX_TAGS},
                "parent_id": _NULLABLE_STRING,
                "timeout_s": {"type": ["number", "null"]},
                "retry": {"type": "object", "description": "Fields of RetryPolicy, each optional."},
                "idempotency_key": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": checks.MAX_KEY_LENGTH,
                },
                "correlation_id": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": checks.MAX_KEY_LENGTH,
                    "description": "Defaults to the request's X-Request-ID.",
                },
            },
            required=["type"],
            description="A new job: type and input, and the optional fields of contract v2.",
        ),
        "RestartJob": _object(
            {"input": {"type": "object"}}, required=[], description="Optional new input."
        ),
    }


def wire_schemas() -> dict[str, Schema]:
    """Every wire type's JSON Schema (2020-12), keyed by name."""
    schemas: dict[str, Schema] = {name: attrs_schema(cls) for cls, name in _NAMED.items()}
    schemas["Event"]["properties"]["type"] = {
        "type": "string",
        "enum": [str(t) for t in EventType],
    }
    schemas.update(_answers())
    return dict(sorted(schemas.items()))


#: ``{type: object, properties, required}`` (every property required unless told).
object_schema = _object

__all__ = ["REF_PREFIX", "Schema", "attrs_schema", "object_schema", "ref", "wire_schemas"]
