"""The OpenAPI 3.1 document of every REST route, served at ``GET /api/openapi.json``.

Component schemas come from :func:`jobspine_shared.schema.wire_schemas`, the definitions the
wire types are checked against; the operations are described here, one entry per route of
:data:`server.rest.routes.ROUTES` (a test checks that both name the same routes).
``python scripts/gen_openapi.py`` rewrites the committed copy ``docs/openapi.json``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import attrs
from aiohttp import web

from jobspine_shared.errors import ErrorCode
from jobspine_shared.schema import Schema, ref, wire_schemas
from jobspine_shared.states import JobState

OPENAPI_VERSION = "3.1.0"
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
API_VERSION = "2"

#: HTTP status of each error code (server.errors), for the error answers listed.
_STATUS_CODES: dict[int, tuple[ErrorCode, ...]] = {
    400: (ErrorCode.BAD_REQUEST,),
    401: (ErrorCode.UNAUTHORIZED,),
    403: (ErrorCode.FORBIDDEN,),
    404: (ErrorCode.NOT_FOUND,),
    405: (ErrorCode.METHOD_NOT_ALLOWED,),
    409: (ErrorCode.INVALID_TRANSITION, ErrorCode.CONFLICT, ErrorCode.LEASE_LOST),
    413: (ErrorCode.PAYLOAD_TOO_LARGE,),
    422: (ErrorCode.VALIDATION_ERROR, ErrorCode.INVALID_PROGRESS),
    429: (ErrorCode.RATE_LIMITED,),
    500: (ErrorCode.INTERNAL,),
    503: (ErrorCode.UNAVAILABLE,),
}

#: Errors every route with a token may answer.
_AUTHED = (401, 403, 429, 500, 503)
_JOB = (*_AUTHED, 404)
_BODY = (400, 413, 422)


@attrs.frozen(kw_only=True)
class Param:
    name: str
    where: str  # "path" | "query" | "header"
    schema: Schema
    description: str
    required: bool = False


@attrs.frozen(kw_only=True)
class Operation:
    method: str
    path: str
    summary: str
    answer: str | None  # component schema name of the success body
    status: int = 200
    auth: bool = True
    params: tuple[Param, ...] = ()
    body: str | None = None
    body_required: bool = False
    errors: tuple[int, ...] = _JOB
    tag: str = "jobs"
    content_type: str = "application/json"
    #: The status of an idempotent replay (create with a known idempotency_key).
    replay_status: int | None = None


_JOB_ID = Param(
    name="job_id",
    where="path",
    schema={"type": "string"},
    description="The job's id.",
    required=True,
)
_JOB_PATH = "/api/jobs/{job_id}"


def _query(name: str, schema: Schema, description: str) -> Param:
    return Param(name=name, where="query", schema=schema, description=description)


_PAGE_PARAMS = (
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size (50)."),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page."),
)
_LIST_PARAMS = (
    _query("state", {"type": "string", "enum": [str(s) for s in JobState]}, "Only this state."),
    _query("type", {"type": "string"}, "Only this job type."),
    _query("user_id", {"type": "string"}, "Admins: only this user's jobs."),
    *_PAGE_PARAMS,
    _query("tag", {"type": "string"}, "Only jobs carrying this tag."),
    _query("parent_id", {"type": "string"}, "Only children of this job."),
    _query("priority", {"type": "integer", "minimum": -100, "maximum": 100}, "Only this priority."),
)


def _job_read(tail: str, summary: str, *, answer: str) -> Operation:
    """``GET /api/jobs/{job_id}/<tail>``: one view of a job."""
    return Operation(
        method="get", path=f"{_JOB_PATH}/{tail}", summary=summary, answer=answer, params=(_JOB_ID,)
    )


def _operations_route(
    path: str,
    summary: str,
    *,
    answer: str | None = None,
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
) -> Operation:
    """``GET <path>`` of the operations endpoints: no token."""
    route = Operation(method="get", path=path, summary=summary, answer=answer, errors=errors)
    return attrs.evolve(route, auth=False, tag="operations", content_type=content_type)


def _job_action(verb: str, summary: str, *, body: str | None = None) -> Operation:
    return Operation(
        method="post",
        path=f"{_JOB_PATH}/{verb}",
        summary=summary,
        answer="Job",
        params=(_JOB_ID,),
        body=body,
        errors=(*_JOB, 409, *(_BODY if body else ())),
    )


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="post",
        path="/api/jobs",
        summary="Create a job",
        answer="Job",
        status=201,
        replay_status=200,
        body="CreateJob",
        body_required=True,
        errors=(*_AUTHED, 409, *_BODY),
    ),
    Operation(
        method="get",
        path="/api/jobs",
        summary="List jobs, newest first",
        answer="JobPage",
        params=_LIST_PARAMS,
        errors=(*_AUTHED, 422),
    ),
    Operation(
        method="get", path=_JOB_PATH, summary="A job's snapshot", answer="Job", params=(_JOB_ID,)
    ),
    Operation(
        method="delete",
        path=_JOB_PATH,
        summary="Delete a job in a final state, with its events, checkpoint and audit trail",
        answer=None,
        status=204,
        params=(_JOB_ID,),
        errors=(*_JOB, 409),
    ),
    Operation(
        method="get",
        path=f"{_JOB_PATH}/events",
        summary="Events after after_seq, or the snapshot to restart from",
        answer="Replay",
        params=(
            _JOB_ID,
            _query("after_seq", {"type": "integer", "minimum": 0}, "The last seq seen."),
            _query("epoch", {"type": "string"}, "The epoch the seqs belong to."),
        ),
        errors=(*_JOB, 422),
    ),
    _job_action("pause", "Pause a job (a running one is asked to pause)"),
    _job_action("resume", "Resume a paused job"),
    _job_action("cancel", "Cancel a job"),
    _job_action("restart", "Restart a failed or cancelled job", body="RestartJob"),
    _job_read("recovery", "What can be done with the job", answer="RecoveryOptions"),
    _job_read("checkpoint", "The job's checkpoint", answer="Checkpoint"),
    Operation(
        method="get",
        path=f"{_JOB_PATH}/audit",
        summary="Who did what to the job, oldest first, a page at a time",
        answer="AuditPage",
        params=(_JOB_ID, *_PAGE_PARAMS),
        errors=(*_JOB, 422),
    ),
    Operation(
        method="get",
        path="/api/stats",
        summary="Jobs by state (admins: all jobs)",
        answer="Stats",
        errors=_AUTHED,
    ),
    Operation(
        method="get",
        path="/api/admin/supervisor",
        summary="Admins: the supervisor's status",
        answer="SupervisorStatus",
        errors=_AUTHED,
        tag="admin",
    ),
    Operation(
        method="post",
        path="/api/admin/jobs/{job_id}/check",
        summary="Admins: recover the job now if it is stale",
        answer="RecoveryCheck",
        params=(_JOB_ID,),
        tag="admin",
    ),
    _operations_route("/healthz", "Liveness", answer="Health"),
    _operations_route(
        "/readyz", "Readiness: the store (and Redis) answer", answer="Readiness", errors=(503,)
    ),
    _operations_route(
        "/metrics", "Prometheus metrics (text exposition 0.0.4)", content_type="text/plain"
    ),
    _operations_route("/api/openapi.json", "This document"),
)

_REQUEST_ID_HEADER: Schema = {
    "description": "The request's X-Request-ID when 1..128 of [A-Za-z0-9_.:-], else a new id.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
}


def _error_answer(status: int) -> Schema:
    codes = ", ".join(str(c) for c in _STATUS_CODES[status])
    answer: Schema = {
        "description": f"Error ({codes})",
        "headers": {"X-Request-ID": ref_header()},
        "content": {"application/json": {"schema": ref("ErrorEnvelope")}},
    }
    if status == 429:
        answer["headers"]["Retry-After"] = {
            "description": "Whole seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    return answer


def ref_header() -> Schema:
    return {"$ref": "#/components/headers/RequestId"}


def _success(op: Operation) -> Schema:
    answer: Schema = {"description": op.summary, "headers": {"X-Request-ID": ref_header()}}
    if op.status == 204:
        pass  # no body
    elif op.content_type == "text/plain":
        answer["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif op.answer is None:
        answer["content"] = {"application/json": {"schema": {"type": "object"}}}
    else:
        answer["content"] = {"application/json": {"schema": ref(op.answer)}}
    return answer


def _operation(op: Operation) -> Schema:
    responses: Schema = {str(op.status): _success(op)}
    if op.replay_status is not None:
        replay = _success(op)
        replay["description"] = "The job this idempotency_key created before (no new job)"
        replay["headers"][IDEMPOTENT_REPLAYED] = {
            "description": "true: the answer repeats an earlier create.",
            "schema": {"type": "string", "const": "true"},
        }
        responses[str(op.replay_status)] = replay
    for status in sorted(set(op.errors)):
        responses[str(status)] = _error_answer(status)
    body: Schema = {
        "summary": op.summary,
        "operationId": _operation_id(op),
        "tags": [op.tag],
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in op.params
        ],
        "responses": responses,
    }
    body["parameters"].append({"$ref": "#/components/parameters/RequestId"})
    if op.body is not None:
        body["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    body["security"] = [{"bearer": []}] if op.auth else []
    return body


def _operation_id(op: Operation) -> str:
    words = [w.strip("{}") for w in op.path.split("/") if w and w != "api"]
    return op.method + "_" + "_".join(words).replace(".", "_")


def build_document(schemas: dict[str, Schema] | None = None) -> dict[str, Any]:
    """The OpenAPI document; ``schemas`` defaults to :func:`wire_schemas`."""
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "jobspine REST API",
            "version": API_VERSION,
            "description": "Realtime backend for long-running jobs; the REST side of "
            "CONTRACT.md. Every error answer is the envelope {error: {code, message, "
            "details?}}; every answer carries X-Request-ID.",
        },
        "paths": paths,
        "components": {
            "schemas": wire_schemas() if schemas is None else schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "headers": {"RequestId": _REQUEST_ID_HEADER},
            "parameters": {
                "RequestId": {
                    "name": "X-Request-ID",
                    "in": "header",
                    "required": False,
                    "description": "Your id for this request (echoed when well-formed).",
                    "schema": {"type": "string"},
                }
            },
        },
    }


def render_document() -> str:
    """The document as committed in docs/openapi.json (sorted keys, two-space indent)."""
    return json.dumps(build_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@functools.cache
def _rendered() -> bytes:
    return render_document().encode()


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /api/openapi.json`` (no token), rendered once per process."""
    return web.Response(body=_rendered(), content_type="application/json")


__all__ = ["OPERATIONS", "Operation", "build_document", "openapi_document", "render_document"]
