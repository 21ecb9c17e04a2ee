"""Operations endpoints, no token: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from jobspine_shared.states import JobState
from server.errors import Unavailable
from server.keys import (
    METRICS,
    READINESS_CHECKS,
    REDIS_MANAGER,
    REDIS_WATCHDOG,
    SIO,
    STORE,
    ReadinessCheck,
)
from server.metrics import Family, exposition, gauge
from server.realtime.rooms import USER_NAMESPACE, WORKER_NAMESPACE
from server.rest.errors import error_response

log = logging.getLogger(__name__)

#: A dependency that has not answered within this many seconds is not ready.
READINESS_TIMEOUT_S = 2.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _failed(check: ReadinessCheck) -> str | None:
    try:
        await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except Exception as exc:
        log.warning("readiness check %s failed: %r", check.name, exc)
        return check.name
    return None


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS_CHECKS]
    failed = [name for name in await asyncio.gather(*map(_failed, checks)) if name]
    if failed:
        return error_response(
            Unavailable("not ready: " + ", ".join(failed), details={"failed": failed})
        )
    return web.json_response({"status": "ready", "checks": [c.name for c in checks]})


async def _job_families(request: web.Request) -> list[Family]:
    up = Family("jobspine_store_up", "gauge", "1 when the job store answered this scrape.")
    try:
        counts = await asyncio.wait_for(
            request.app[STORE].count_by_state(None), READINESS_TIMEOUT_S
        )
    except Exception as exc:
        log.warning("metrics: counting jobs failed: %r", exc)
        up.set(0)
        return [up]
    up.set(1)
    by_state = {str(state): float(counts.get(state, 0)) for state in JobState}
    return [up, gauge("jobspine_jobs", "Jobs by state.", by_state, "state")]


def _redis_families(app: web.Application) -> list[Family]:
    """With ``REDIS_URL``: the bus's health and counters since the process started."""
    if REDIS_MANAGER not in app:
        return []
    manager, watchdog = app[REDIS_MANAGER], app[REDIS_WATCHDOG]
    values = (
        (
            "jobspine_redis_up",
            "gauge",
            "1 when cross-instance delivery through Redis works (as /readyz checks it).",
            float(watchdog.trouble is None),
        ),
        (
            "jobspine_redis_published_total",
            "counter",
            "Messages published to other instances.",
            float(manager.published),
        ),
        (
            "jobspine_redis_dropped_total",
            "counter",
            "Messages not published (Redis unreachable); clients fill such gaps by replay.",
            float(manager.dropped),
        ),
        (
            "jobspine_redis_listener_restarts_total",
            "counter",
            "Listeners restarted after missing their probe.",
            float(manager.listener_restarts),
        ),
    )
    families = []
    for name, kind, help, value in values:
        family = Family(name, kind, help)
        family.set(value)
        families.append(family)
    return families


async def metrics(request: web.Request) -> web.Response:
    sockets = request.app[SIO]
    connected = {
        ns: float(sockets.connected_count(ns)) for ns in (USER_NAMESPACE, WORKER_NAMESPACE)
    }
    families = [
        *await _job_families(request),
        gauge(
            "jobspine_sockets_connected",
            "Sockets connected to this instance by namespace.",
            connected,
            "namespace",
        ),
        *request.app[METRICS].families(),
        *_redis_families(request.app),
    ]
    return web.Response(
        body=exposition(families).encode(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
    )


__all__ = ["healthz", "metrics", "readyz"]
