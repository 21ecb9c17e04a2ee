"""Operations endpoints, no token: liveness, readiness, Prometheus metrics, and the
``METRICS_PORT`` site that serves ``/metrics`` alone on a port of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.errors import Unavailable
from server.keys import (
    JOBS_GAUGE,
    LIFECYCLE_METRICS,
    METRICS,
    READINESS_CHECKS,
    REDIS_MANAGER,
    REDIS_WATCHDOG,
    SETTINGS,
    SIO,
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


async def _job_families(app: web.Application) -> list[Family]:
    up = Family("jobspine_store_up", "gauge", "1 when the job store answered this scrape.")
    try:
        jobs = await asyncio.wait_for(app[JOBS_GAUGE].family(), READINESS_TIMEOUT_S)
    except Exception as exc:
        log.warning("metrics: counting jobs failed: %r", exc)
        up.set(0)
        return [up]
    up.set(1)
    return [up, jobs]


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
            float(manager.outbox.published),
        ),
        (
            "jobspine_redis_dropped_total",
            "counter",
            "Messages not published (Redis unreachable); clients fill such gaps by replay.",
            float(manager.outbox.dropped),
        ),
        (
            "jobspine_redis_listener_restarts_total",
            "counter",
            "Listeners restarted after missing their probe.",
            float(manager.listener_restarts),
        ),
        (
            "jobspine_redis_rejected_total",
            "counter",
            "Messages heard on Redis without a valid REDIS_SIGNING_KEY signature, dropped.",
            float(manager.rejected),
        ),
    )
    families = []
    for name, kind, help, value in values:
        family = Family(name, kind, help)
        family.set(value)
        families.append(family)
    return families


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; ``METRICS_PORT`` serves it on a port of its own too."""
    return await exposition_of(request.app)


async def exposition_of(app: web.Application) -> web.Response:
    sockets = app[SIO]
    connected = {
        ns: float(sockets.connected_count(ns)) for ns in (USER_NAMESPACE, WORKER_NAMESPACE)
    }
    families = [
        *await _job_families(app),
        gauge(
            "jobspine_sockets_connected",
            "Sockets connected to this instance by namespace.",
            connected,
            "namespace",
        ),
        *app[METRICS].families(),
        *app[LIFECYCLE_METRICS].families(),
        *_redis_families(app),
    ]
    return web.Response(
        body=exposition(families).encode(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
    )


class MetricsSiteError(Exception):
    """``METRICS_HOST``/``METRICS_PORT`` cannot be bound; the web process stops."""


async def metrics_site(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: with ``METRICS_PORT``, ``/metrics`` alone on ``METRICS_HOST`` (loopback
    by default) and that port, so the public port need not expose it."""
    settings = app[SETTINGS]
    if settings.metrics_port is None:
        yield
        return

    async def scrape(request: web.Request) -> web.Response:
        return await exposition_of(app)

    side = web.Application()
    side.router.add_get("/metrics", scrape)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        except OSError as exc:
            address = f"{settings.metrics_host}:{settings.metrics_port}"
            raise MetricsSiteError(f"METRICS_PORT: cannot listen on {address}: {exc}") from exc
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
        yield
    finally:
        await runner.cleanup()


__all__ = ["MetricsSiteError", "exposition_of", "healthz", "metrics", "metrics_site", "readyz"]
