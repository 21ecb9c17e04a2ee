"""Admin views: the supervisor's status and an on-demand recovery check of one job."""

from __future__ import annotations

from aiohttp import web

from jobspine_shared.wire import job_to_wire
from server.actors import require_admin
from server.keys import REPOSITORY, SUPERVISOR
from server.rest.json_body import json_response
from server.rest.requests import authenticate, path_job_id


async def supervisor_status(request: web.Request) -> web.Response:
    actor = authenticate(request)
    require_admin(actor, "see the supervisor")
    return json_response(request.app[SUPERVISOR].status.to_wire())


async def check_job(request: web.Request) -> web.Response:
    """``{recovered, job}``: ``recovered`` says whether this check paused or failed the job."""
    actor = authenticate(request)
    check = await request.app[REPOSITORY].check_job(actor, path_job_id(request))
    return json_response({"recovered": check.recovered, "job": job_to_wire(check.job)})


__all__ = ["check_job", "supervisor_status"]
