"""Reading a REST request: the bearer token, the job id in the path, query values, JSON bodies."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from server import validation
from server.actors import USER_ROLES, Actor
from server.auth import require_role
from server.errors import BadRequest, NotFound, Unauthorized
from server.keys import VERIFIER

_INTEGER = re.compile(r"-?[0-9]{1,18}")


def authenticate(request: web.Request) -> Actor:
    """The caller of ``Authorization: Bearer <jwt>``: unauthorized / forbidden otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    identity = request.app[VERIFIER].verify(token.strip())
    return require_role(identity.actor, *USER_ROLES)


def path_job_id(request: web.Request) -> str:
    """The job id of the path; a malformed one names no job, so it is ``not_found``."""
    value = request.match_info["job_id"]
    if not validation.is_job_id(value):
        raise NotFound()
    return value


def query_text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None


def query_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if not _INTEGER.fullmatch(value):
        raise validation.invalid(name, f"must be an integer, got {value!r}")
    return int(value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any] | None:
    """The body as a JSON object; ``None`` for an empty body when ``optional``.

    Unreadable JSON is a ``bad_request``; JSON that is not an object a ``validation_error``.
    """
    try:
        raw = await request.read()
    except web.RequestPayloadError:  # e.g. a Content-Encoding the body does not match
        raise BadRequest("the request body could not be decoded") from None
    if not raw.strip():
        if optional:
            return None
        raise BadRequest("the request body must be a JSON object")
    try:
        body = json.loads(
            raw.decode("utf-8"),
            parse_constant=_no_constants,
            parse_int=validation.parse_json_int,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise validation.invalid("body", "must be a JSON object")
    return body


__all__ = ["authenticate", "json_body", "path_job_id", "query_int", "query_text"]
