"""The wire document: JSON Schema (2020-12) of everything that crosses a socket or REST.

:func:`wire_document` extends :func:`jobspine_shared.schema.wire_schemas` (the REST shapes,
also used by the OpenAPI document) with what only the sockets carry: the snapshot of schema
v1 beside v2, each event type's ``data`` and a typed event per type, every ack of both
namespaces, the call payloads and the server's pushes. ``x-calls`` and ``x-pushes`` map each
Socket.IO event name to its definitions, so that a code generator (``scripts/gen_wire_types.py``)
can type a client's calls and listeners from this one file.
"""

from __future__ import annotations

import copy
from typing import Any

from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.schema import REF_PREFIX, Schema, wire_schemas
from jobspine_shared.schema import object_schema as _object
from jobspine_shared.schema import ref as _ref
from jobspine_shared.states import JobState
from jobspine_shared.wire import MIGRATIONS

DEFS_PREFIX = "#/$defs/"
SCHEMA_ID = "https://jobspine.dev/schema/wire.schema.json"

_STATE: Schema = {"type": "string", "enum": [str(s) for s in JobState]}
_TIME: Schema = {"type": "string", "format": "date-time"}
_JOB_ID: Schema = {"type": "string", "format": "uuid"}
_TRUE: Schema = {"type": "boolean", "const": True}


def _ok(properties: Schema | None = None, *, required: list[str] | None = None) -> Schema:
    """A successful ack: ``{ok: true, …}``."""
    body = {"ok": _TRUE, **(properties or {})}
    return _object(body, required=None if required is None else ["ok", *required])


#: ``data`` of every event type; a type missing here fails the wire schema test.
EVENT_DATA: dict[EventType, Schema] = {
    EventType.CREATED: _object({"job": _ref("Job")}, description="The snapshot at seq 1."),
    EventType.STARTED: _object(
        {
            "attempt": {"type": "integer", "minimum": 1},
            "worker_id": {"type": "string"},
            "resumed": {"type": "boolean", "description": "The claim handed over a checkpoint."},
        }
    ),
    EventType.PROGRESS: _object(
        {
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "step": {"type": ["string", "null"]},
        }
    ),
    EventType.CHECKPOINT: _object(
        {
            "size_bytes": {"type": "integer", "minimum": 0},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
        },
        required=["size_bytes"],
        description="progress only when the checkpoint carried one.",
    ),
    EventType.PAUSE_REQUESTED: _object({}),
    EventType.PAUSED: _object(
        {"reason": {"type": "string", "enum": [str(r) for r in PauseReason]}}
    ),
    EventType.RECOVERY: _ref("RecoveryOptions"),
    EventType.RESUMED: _object({"has_checkpoint": {"type": "boolean"}}),
    EventType.COMPLETED: _object({"result": {}}),
    EventType.FAILED: _object({"error": _ref("JobError")}),
    EventType.CANCELLED: _object({"previous_state": _STATE}),
    EventType.RESTARTED: _object({"previous_state": _STATE}),
    EventType.RETRYING: _object(
        {
            "error": _ref("JobError"),
            "attempt": {"type": "integer"},
            "run_at": {"type": ["string", "null"], "format": "date-time"},
        }
    ),
}


def event_name(kind: EventType, suffix: str) -> str:
    """``job:pause_requested`` -> ``PauseRequested`` + suffix."""
    return "".join(part.capitalize() for part in kind.value.split(":")[1].split("_")) + suffix


def _typed_events(envelope: Schema) -> dict[str, Schema]:
    """One full event schema per type (``type`` a constant, ``data`` its shape), and
    ``AnyEvent``, their union discriminated by ``type``."""
    schemas: dict[str, Schema] = {}
    for kind in EventType:
        event = copy.deepcopy(envelope)
        event["properties"]["type"] = {"type": "string", "const": kind.value}
        event["properties"]["data"] = _ref(event_name(kind, "Data"))
        event["description"] = f"The {kind.value} event."
        schemas[event_name(kind, "Data")] = EVENT_DATA[kind]
        schemas[event_name(kind, "Event")] = event
    schemas["AnyEvent"] = {
        "oneOf": [_ref(event_name(kind, "Event")) for kind in EventType],
        "description": "Any job event; its type names its data.",
    }
    return schemas


def _v1_snapshot(job: Schema) -> Schema:
    """The snapshot of schema v1: the fields v2 added removed, ``schema_version`` 1."""
    added = set(MIGRATIONS[1]({})) - {"schema_version"}
    v1 = copy.deepcopy(job)
    v1["properties"] = {k: v for k, v in v1["properties"].items() if k not in added}
    v1["properties"]["schema_version"] = {"type": "integer", "const": 1}
    v1["required"] = [k for k in v1["required"] if k not in added]
    v1["description"] = "A job snapshot of schema v1 (a v1 server's, or a v1 client's view)."
    return v1


def _acks() -> dict[str, Schema]:
    sync_slot = {
        "oneOf": [
            _object(
                {
                    "recovered": {"type": "boolean"},
                    "events": {"type": "array", "items": _ref("AnyEvent")},
                    "job": _ref("Job"),
                }
            ),
            _object({"error": _ref("Error")}),
            _object(
                {"truncated": _TRUE}, description="Ask again: the reply reached its size bound."
            ),
        ]
    }
    return {
        "ErrorAck": _object({"ok": {"type": "boolean", "const": False}, "error": _ref("Error")}),
        "OkAck": _ok(),
        "JobAck": _ok({"job": _ref("Job")}),
        "CreateAck": _ok(
            {"job": _ref("Job"), "existing": _TRUE},
            required=["job"],
        ),
        "SubscribeAck": _ok(
            {
                "job": _ref("Job"),
                "events": {"type": "array", "items": _ref("AnyEvent")},
                "recovered": {"type": "boolean"},
            }
        ),
        "SyncSlot": sync_slot,
        "SyncAck": _ok({"results": {"type": "object", "additionalProperties": _ref("SyncSlot")}}),
        "RecoveryAck": _ok({"options": _ref("RecoveryOptions")}),
        "RefreshAck": _ok(
            {"exp": {"type": "integer", "description": "The new exp (Unix seconds)."}}
        ),
        "ClaimAck": _ok(
            {
                "job": {"anyOf": [_ref("Job"), {"type": "null"}]},
                "lease": {"type": ["string", "null"]},
                "checkpoint": {"type": ["object", "null"]},
            }
        ),
        "HeartbeatAck": _ok({"pause_requested": {"type": "boolean"}}),
        "CheckpointAck": _ok({"checkpoint_at": _TIME}),
    }


def _payloads() -> dict[str, Schema]:
    cursor = {"type": "integer", "minimum": 0}
    lease = {"job_id": _JOB_ID, "lease": {"type": "string"}}
    return {
        "JobIdPayload": _object({"job_id": _JOB_ID}),
        "SubscribePayload": _object(
            {"job_id": _JOB_ID, "after_seq": cursor, "epoch": {"type": "string"}},
            required=["job_id"],
        ),
        "SyncPayload": _object(
            {
                "cursors": {"type": "object", "additionalProperties": cursor},
                "epochs": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            required=["cursors"],
        ),
        "RestartPayload": _object(
            {"job_id": _JOB_ID, "input": {"type": "object"}}, required=["job_id"]
        ),
        "RefreshPayload": _object({"token": {"type": "string"}}),
        "ClaimPayload": _object(
            {
                "types": {"type": "array", "items": {"type": "string"}},
                "worker_id": {"type": "string"},
            },
            required=[],
        ),
        "LeasePayload": _object(lease),
        "ProgressPayload": _object(
            {**lease, "progress": {"type": "number"}, "step": {"type": ["string", "null"]}},
            required=["job_id", "lease", "progress"],
        ),
        "CheckpointPayload": _object(
            {**lease, "data": {"type": "object"}, "progress": {"type": "number"}},
            required=["job_id", "lease", "data"],
        ),
        "PausedPayload": _object(
            {**lease, "checkpoint": {"type": "object"}}, required=["job_id", "lease"]
        ),
        "CompletePayload": _object({**lease, "result": {}}, required=["job_id", "lease"]),
        "FailPayload": _object(
            {
                **lease,
                "error": _object(
                    {
                        "message": {"type": "string"},
                        "code": {"type": "string"},
                        "retryable": {"type": "boolean"},
                    },
                    required=["message"],
                ),
            }
        ),
    }


def _pushes() -> dict[str, Schema]:
    return {
        "SessionExpired": _object({}, description="The socket's token expired; it is closed next."),
        "LeaseRevoked": _object(
            {
                "job_id": _JOB_ID,
                "state": _STATE,
                "reason": {"type": "string", "enum": ["cancelled", "stalled", "timeout"]},
            }
        ),
        "JobsAvailable": _object({"types": {"type": "array", "items": {"type": "string"}}}),
        "WorkerPauseRequested": _object({"job_id": _JOB_ID}),
    }


_JOB_CALLS = ("job:pause", "job:resume", "job:cancel")

#: Socket.IO calls by namespace: event -> (payload, ack on success); a refusal is ErrorAck.
CALLS: dict[str, dict[str, tuple[str, str]]] = {
    "/": {
        "job:subscribe": ("SubscribePayload", "SubscribeAck"),
        "job:unsubscribe": ("JobIdPayload", "OkAck"),
        "job:sync": ("SyncPayload", "SyncAck"),
        "job:create": ("CreateJob", "CreateAck"),
        **{name: ("JobIdPayload", "JobAck") for name in _JOB_CALLS},
        "job:restart": ("RestartPayload", "JobAck"),
        "job:recovery": ("JobIdPayload", "RecoveryAck"),
        "auth:refresh": ("RefreshPayload", "RefreshAck"),
    },
    "/workers": {
        "claim": ("ClaimPayload", "ClaimAck"),
        "heartbeat": ("LeasePayload", "HeartbeatAck"),
        "progress": ("ProgressPayload", "OkAck"),
        "checkpoint": ("CheckpointPayload", "CheckpointAck"),
        "paused": ("PausedPayload", "OkAck"),
        "complete": ("CompletePayload", "OkAck"),
        "fail": ("FailPayload", "OkAck"),
        "auth:refresh": ("RefreshPayload", "RefreshAck"),
    },
}

#: What the server emits outside calls, by namespace: event -> definition.
PUSHES: dict[str, dict[str, str]] = {
    "/": {
        **{kind.value: event_name(kind, "Event") for kind in EventType},
        "session:expired": "SessionExpired",
    },
    "/workers": {
        "lease:revoked": "LeaseRevoked",
        "jobs:available": "JobsAvailable",
        "job:pause_requested": "WorkerPauseRequested",
        "session:expired": "SessionExpired",
    },
}


def _to_defs(value: Any) -> Any:
    """References rewritten from OpenAPI components to this document's ``$defs``."""
    if isinstance(value, dict):
        return {
            k: (DEFS_PREFIX + v.removeprefix(REF_PREFIX) if k == "$ref" else _to_defs(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_to_defs(v) for v in value]
    return value


def wire_definitions() -> dict[str, Schema]:
    """Every definition of the wire document by name (references as OpenAPI components)."""
    schemas = wire_schemas()
    schemas["JobV1"] = _v1_snapshot(schemas["Job"])
    schemas.update(_typed_events(schemas["Event"]))
    schemas.update(_acks())
    schemas.update(_payloads())
    schemas.update(_pushes())
    return dict(sorted(schemas.items()))


def wire_document() -> Schema:
    """The whole wire schema as one JSON Schema document."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "jobspine wire types (contract v2)",
        "description": "Generated by scripts/gen_wire_types.py from packages/shared; do not edit.",
        "x-calls": {
            ns: {
                event: {"payload": p, "ack": a, "error": "ErrorAck"}
                for event, (p, a) in calls.items()
            }
            for ns, calls in CALLS.items()
        },
        "x-pushes": PUSHES,
        "$defs": _to_defs(wire_definitions()),
    }


__all__ = [
    "CALLS",
    "DEFS_PREFIX",
    "EVENT_DATA",
    "PUSHES",
    "event_name",
    "wire_definitions",
    "wire_document",
]
