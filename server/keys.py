"""Typed keys of what the web application holds, shared by the app factory and the views.

:mod:`server.app` fills them in (``app[keys.SETTINGS] = …``); they live here so that views
need not import the factory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
from aiohttp import web

from server.auth import TokenVerifier
from server.config import Settings
from server.lifecycle_metrics import JobsGauge, LifecycleMetrics
from server.metrics import Metrics
from server.realtime.dispatch import InFlight
from server.realtime.redis_manager import JobspineRedisManager
from server.realtime.redis_watchdog import RedisWatchdog
from server.realtime.sockets import SocketServer
from server.service import JobRepository
from server.store.base import JobStore
from server.supervisor import Supervisor


@attrs.frozen(kw_only=True)
class ReadinessCheck:
    """A named probe for ``/readyz``: it returns when the dependency answers, raises otherwise."""

    name: str
    probe: Callable[[], Awaitable[None]]

    async def __call__(self) -> None:
        await self.probe()


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", JobStore)
REPOSITORY = web.AppKey("repository", JobRepository)
SIO = web.AppKey("sio", SocketServer)
VERIFIER = web.AppKey("verifier", TokenVerifier)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE_METRICS = web.AppKey("lifecycle_metrics", LifecycleMetrics)
JOBS_GAUGE = web.AppKey("jobs_gauge", JobsGauge)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
#: HTTP requests being served, the long-lived Engine.IO ones (websockets, polls) included.
HTTP_IN_FLIGHT = web.AppKey("http_in_flight", InFlight)
READINESS_CHECKS = web.AppKey("readiness_checks", list[ReadinessCheck])
SUPERVISOR = web.AppKey("supervisor", Supervisor)
#: Set only with ``REDIS_URL``: the Socket.IO client manager and its listener's watchdog.
REDIS_MANAGER = web.AppKey("redis_manager", JobspineRedisManager)
REDIS_WATCHDOG = web.AppKey("redis_watchdog", RedisWatchdog)

__all__ = [
    "HTTP_IN_FLIGHT",
    "IN_FLIGHT",
    "JOBS_GAUGE",
    "LIFECYCLE_METRICS",
    "METRICS",
    "READINESS_CHECKS",
    "REDIS_MANAGER",
    "REDIS_WATCHDOG",
    "REPOSITORY",
    "SETTINGS",
    "SIO",
    "STORE",
    "SUPERVISOR",
    "VERIFIER",
    "ReadinessCheck",
]
