"""The job views of the REST API: authenticate, read the request, one repository call, reply.

Single-job endpoints answer with the bare job snapshot.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_to_wire
from server.commands.create import parse_create
from server.commands.user import parse_audit, parse_list, parse_read_stream, parse_restart
from server.keys import METRICS, REPOSITORY
from server.rendering import (
    audit_to_wire,
    checkpoint_to_wire,
    counts_to_wire,
    page_to_wire,
    recovery_options_to_wire,
    replay_to_wire,
)
from server.rest.json_body import json_response
from server.rest.requests import authenticate, json_body, path_job_id, query_int, query_text
from server.rest.tracking import request_id
from server.service import JobRepository

IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"


def _repository(request: web.Request) -> JobRepository:
    return request.app[REPOSITORY]


def _job(job: JobRecord, status: int = 200) -> web.Response:
    return json_response(job_to_wire(job), status=status)


def _json(body: dict[str, Any]) -> web.Response:
    return json_response(body)


async def create_job(request: web.Request) -> web.Response:
    actor = authenticate(request)
    body = await json_body(request) or {}
    # Without a correlation_id of its own the job takes this request's id (X-Request-ID).
    created = await _repository(request).create(
        actor, parse_create(body), request_id=request_id(request)
    )
    if created.existing:  # the idempotency key named a job created before
        return json_response(job_to_wire(created.job), headers={IDEMPOTENT_REPLAYED_HEADER: "true"})
    return _job(created.job, status=201)


async def list_jobs(request: web.Request) -> web.Response:
    actor = authenticate(request)
    texts = ("state", "type", "user_id", "cursor", "tag", "parent_id")
    query: dict[str, object] = {name: query_text(request, name) for name in texts}
    query.update({name: query_int(request, name) for name in ("limit", "priority")})
    page = await _repository(request).list_jobs(actor, parse_list(query))
    return _json(page_to_wire(page))


async def delete_job(request: web.Request) -> web.Response:
    """204 for a job in a final state; it is ``not_found`` everywhere after."""
    actor = authenticate(request)
    await _repository(request).delete_job(actor, path_job_id(request))
    request.app[METRICS].jobs_deleted_by("user")
    return web.Response(status=204)


async def get_job(request: web.Request) -> web.Response:
    actor = authenticate(request)
    return _job(await _repository(request).get_job(actor, path_job_id(request)))


async def job_events(request: web.Request) -> web.Response:
    actor = authenticate(request)
    read = parse_read_stream(
        {
            "job_id": path_job_id(request),
            "after_seq": query_int(request, "after_seq"),
            "epoch": query_text(request, "epoch"),
        }
    )
    return _json(replay_to_wire(await _repository(request).replay(actor, read)))


async def pause_job(request: web.Request) -> web.Response:
    actor = authenticate(request)
    return _job(await _repository(request).pause(actor, path_job_id(request)))


async def resume_job(request: web.Request) -> web.Response:
    actor = authenticate(request)
    return _job(await _repository(request).resume(actor, path_job_id(request)))


async def cancel_job(request: web.Request) -> web.Response:
    actor = authenticate(request)
    return _job(await _repository(request).cancel(actor, path_job_id(request)))


async def restart_job(request: web.Request) -> web.Response:
    """``{input}`` in the body (optional) replaces the job's input."""
    actor = authenticate(request)
    job_id = path_job_id(request)
    body = await json_body(request, optional=True) or {}
    command = parse_restart({"job_id": job_id, "input": body.get("input")})
    return _job(await _repository(request).restart(actor, command))


async def recovery_options(request: web.Request) -> web.Response:
    actor = authenticate(request)
    options = await _repository(request).recovery_options(actor, path_job_id(request))
    return _json(recovery_options_to_wire(options))


async def get_checkpoint(request: web.Request) -> web.Response:
    actor = authenticate(request)
    checkpoint = await _repository(request).get_checkpoint(actor, path_job_id(request))
    return _json(checkpoint_to_wire(checkpoint))


async def audit_trail(request: web.Request) -> web.Response:
    """A page of the trail, oldest first: ``limit`` and ``cursor`` as for the job list."""
    actor = authenticate(request)
    query = {
        "job_id": path_job_id(request),
        "limit": query_int(request, "limit"),
        "cursor": query_text(request, "cursor"),
    }
    return _json(audit_to_wire(await _repository(request).audit_trail(actor, parse_audit(query))))


async def stats(request: web.Request) -> web.Response:
    actor = authenticate(request)
    return _json(counts_to_wire(await _repository(request).get_stats(actor)))


__all__ = [
    "audit_trail",
    "cancel_job",
    "create_job",
    "delete_job",
    "get_checkpoint",
    "get_job",
    "job_events",
    "list_jobs",
    "pause_job",
    "recovery_options",
    "restart_job",
    "resume_job",
    "stats",
]
