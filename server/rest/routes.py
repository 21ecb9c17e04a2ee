"""Every HTTP route of the web process, in one table.

Components with routes of their own call :func:`add_routes` with their own table.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from server.rest import admin, openapi, ops, views

JOB = "/api/jobs/{job_id}"

ROUTES: list[web.RouteDef] = [
    web.post("/api/jobs", views.create_job),
    web.get("/api/jobs", views.list_jobs, allow_head=False),
    web.get(JOB, views.get_job, allow_head=False),
    web.delete(JOB, views.delete_job),
    web.get(f"{JOB}/events", views.job_events, allow_head=False),
    web.post(f"{JOB}/pause", views.pause_job),
    web.post(f"{JOB}/resume", views.resume_job),
    web.post(f"{JOB}/cancel", views.cancel_job),
    web.post(f"{JOB}/restart", views.restart_job),
    web.get(f"{JOB}/recovery", views.recovery_options, allow_head=False),
    web.get(f"{JOB}/checkpoint", views.get_checkpoint, allow_head=False),
    web.get(f"{JOB}/audit", views.audit_trail, allow_head=False),
    web.get("/api/stats", views.stats, allow_head=False),
    web.get("/api/admin/supervisor", admin.supervisor_status, allow_head=False),
    web.post("/api/admin/jobs/{job_id}/check", admin.check_job),
    web.get("/healthz", ops.healthz),
    web.get("/readyz", ops.readyz),
    web.get("/metrics", ops.metrics),
    web.get("/api/openapi.json", openapi.openapi_document, allow_head=False),
]


def add_routes(app: web.Application, routes: Iterable[web.RouteDef] = ROUTES) -> None:
    app.router.add_routes(list(routes))


__all__ = ["ROUTES", "add_routes"]
