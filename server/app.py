"""The web application: Socket.IO, the REST API, health and metrics over one job repository.

Everything that runs in the background starts and stops with the aiohttp lifecycle
(``cleanup_ctx``); nothing outlives the application.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server import keys
from server.auth import TokenVerifier
from server.config import Settings
from server.errors import Unavailable
from server.lifecycle_metrics import JobsGauge, LifecycleMetrics
from server.limits.rest import rate_limit_middleware
from server.limits.wiring import install_limits
from server.metrics import Metrics
from server.realtime import user_namespace, worker_namespace
from server.realtime.dispatch import InFlight, NamespaceWiring
from server.realtime.publisher import SocketPublisher
from server.realtime.redis_manager import JobspineRedisManager
from server.realtime.redis_signing import MessageSigner
from server.realtime.redis_watchdog import RedisWatchdog
from server.realtime.resend import LatestEventResender
from server.realtime.sockets import SocketServer
from server.rest.cors import cors_middleware
from server.rest.errors import error_middleware
from server.rest.ops import metrics_site
from server.rest.routes import add_routes
from server.rest.tracking import add_request_id_header, tracking_middleware
from server.rest.ui import Dashboard
from server.retention import RETENTION_LOCK_KEY, RetentionSweeper
from server.scan_gate import AlwaysScan, ScanGate
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from server.store.memory import MemoryJobStore
from server.store.postgres.scan_lock import PostgresScanLock
from server.supervisor import Supervisor
from server.tasks import start_task, stop_task

log = logging.getLogger(__name__)

#: How long shutdown waits for socket calls in flight before closing the store.
DRAIN_TIMEOUT_S = 5.0


def build_store(settings: Settings) -> JobStore:
    """The store ``DATABASE_URL`` selects (not opened yet): Postgres, or in-memory when unset."""
    if settings.database_url is None:
        return MemoryJobStore(backlog_size=settings.backlog_size)
    # Imported here so that asyncpg is loaded only by deployments that use it.
    from server.store.postgres import PostgresJobStore

    return PostgresJobStore(settings.database_url, backlog_size=settings.backlog_size)


def add_background_services(app: web.Application) -> None:
    """In-process background services, each a ``cleanup_ctx`` generator.

    They start after the store is open and Socket.IO is ready, and stop first, in reverse
    order, before the socket calls still running are drained and the repository closes
    (``_socketio_lifecycle``). A service whose dependency ``/readyz`` should check appends a
    :class:`~server.keys.ReadinessCheck` to ``app[keys.READINESS_CHECKS]``.
    """
    app.cleanup_ctx.append(_supervisor_lifecycle)
    app.cleanup_ctx.append(_retention_lifecycle)


async def _retention_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The ``RETENTION_S`` sweeper (:mod:`server.retention`), when retention is on."""
    settings = app[keys.SETTINGS]
    if settings.retention_s <= 0:
        yield
        return
    gate: ScanGate = AlwaysScan()
    if settings.database_url is not None:
        gate = PostgresScanLock(settings.database_url, key=RETENTION_LOCK_KEY)
    metrics = app[keys.METRICS]
    sweeper = RetentionSweeper(
        app[keys.REPOSITORY],
        retention_s=settings.retention_s,
        gate=gate,
        on_deleted=lambda count: metrics.jobs_deleted_by("retention", count),
    )
    task = start_task(sweeper.run(), name="retention")
    try:
        yield
    finally:
        await stop_task(task)


async def _supervisor_lifecycle(app: web.Application) -> AsyncIterator[None]:
    task = start_task(app[keys.SUPERVISOR].run(), name="supervisor")
    try:
        yield
    finally:
        await stop_task(task)


def _scan_gate(settings: Settings) -> ScanGate:
    """With Postgres, one instance's supervisor scans at a time
    (:mod:`server.store.postgres.scan_lock`)."""
    if settings.database_url is None:
        return AlwaysScan()
    return PostgresScanLock(settings.database_url)


def _redis_manager(settings: Settings) -> JobspineRedisManager | None:
    """The Redis client manager ``REDIS_URL`` asks for; ``None`` for a single instance."""
    if settings.redis_url is None:
        return None
    return JobspineRedisManager(
        settings.redis_url,
        channel=settings.redis_channel,
        signer=MessageSigner(settings.redis_signing_keys),
    )


def _add_redis(
    app: web.Application, manager: JobspineRedisManager, publisher: SocketPublisher
) -> None:
    """Cross-instance delivery: the listener and its watchdog live with the app, and
    ``/readyz`` checks the last round trip. It stops after Socket.IO (calls still draining
    may emit), and the manager drops publishes once closed. After Redis lost messages, the
    latest event of each job concerned is sent again (:mod:`server.realtime.resend`)."""
    repair = LatestEventResender(app[keys.SIO], app[keys.STORE], publisher)
    watchdog = RedisWatchdog(manager, repair=repair)
    app[keys.REDIS_MANAGER], app[keys.REDIS_WATCHDOG] = manager, watchdog
    app[keys.READINESS_CHECKS].append(keys.ReadinessCheck(name="redis", probe=watchdog.readiness))
    app.cleanup_ctx.append(_redis_lifecycle)


async def _redis_lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[keys.REDIS_MANAGER]
    manager.start()
    task = start_task(app[keys.REDIS_WATCHDOG].run(), name="redis-watchdog")
    try:
        yield
    finally:
        await stop_task(task)
        await manager.close()


async def _store_lifecycle(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    try:
        await store.open()  # the Postgres store applies its schema migrations here
    except Unavailable as exc:
        # The process stays up: /readyz says 503 and the store retries on its next call.
        log.warning("job store %s unavailable at start: %s", type(store).__name__, exc.message)
    else:
        log.info("job store %s open", type(store).__name__)
    try:
        yield
    finally:
        await store.close()


async def _socketio_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """At shutdown, after the background services stopped: the socket calls still running
    finish (up to ``DRAIN_TIMEOUT_S``), then the repository closes (the trailing events of
    held progress reports, what cancelled callers left), while Socket.IO, Redis and the store
    are still up to publish and write them; then Socket.IO stops."""
    yield
    if not await app[keys.IN_FLIGHT].drain(DRAIN_TIMEOUT_S):
        log.warning("%d socket call(s) still running at shutdown", len(app[keys.IN_FLIGHT]))
    await app[keys.REPOSITORY].close()
    await app[keys.SIO].shutdown()


async def close_client_connections(app: web.Application, timeout_s: float) -> bool:
    """Drop every Socket.IO client's transport (they reconnect, as after a crash) and wait up
    to ``timeout_s`` for the requests that carried them (websockets, long polls) to end;
    whether they all did.

    Call it before the runner's cleanup: once aiohttp begins its shutdown it no longer reads
    from open connections, so websocket clients could not finish their closing handshake
    and would hold shutdown until its timeout.
    """
    await app[keys.SIO].disconnect_all()
    return await app[keys.HTTP_IN_FLIGHT].drain(timeout_s)


async def _disconnect_sockets(app: web.Application) -> None:
    """For runners that did not call :func:`close_client_connections` first: long polls end
    at once, websockets within the websocket close timeout or the runner's shutdown timeout."""
    await app[keys.SIO].disconnect_all()


def create_app(
    settings: Settings, *, store: JobStore | None = None, client_manager: Any = None
) -> web.Application:
    """Build the application.

    ``store``: a store to use as is; its owner opens and closes it. Without one, the app
    builds the store ``settings`` select and opens and closes it with its lifecycle.
    ``client_manager``: a python-socketio client manager, used as is; without one, the Redis
    manager when ``REDIS_URL`` is set (run and stopped by the app), else in-process.
    """
    redis_manager = _redis_manager(settings) if client_manager is None else None
    if redis_manager is not None:
        client_manager = redis_manager
    owns_store = store is None
    job_store = build_store(settings) if store is None else store
    metrics, in_flight = Metrics(), InFlight()
    sockets = SocketServer(
        max_message_bytes=settings.max_message_bytes,
        client_manager=client_manager,
        max_client_queue=settings.max_client_queue,
        max_client_queue_bytes=settings.limits.max_client_queue_bytes,
        cors_origins=settings.cors_origins,
        on_client_dropped=metrics.slow_client_dropped,
    )
    repository = JobRepository(
        job_store,
        RepositorySettings(
            max_checkpoint_bytes=settings.max_checkpoint_bytes,
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
            max_recovery_attempts=settings.max_recovery_attempts,
            progress_events_per_s=settings.progress_events_per_s,
            max_input_bytes=settings.limits.max_input_bytes,
            max_active_jobs_per_user=settings.limits.max_active_jobs_per_user,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            max_running_per_user=settings.max_running_per_user,
        ),
    )
    publisher = SocketPublisher(sockets, metrics)
    repository.set_publisher(publisher)
    repository.set_progress_observer(metrics.progress_event_throttled)
    lifecycle = LifecycleMetrics()
    repository.set_transition_observer(lifecycle)
    verifier = TokenVerifier(settings.jwt)

    app = web.Application(
        client_max_size=settings.max_message_bytes,
        middlewares=[
            tracking_middleware,
            cors_middleware,
            error_middleware,
            rate_limit_middleware,
        ],
    )
    app.on_response_prepare.append(add_request_id_header)
    app[keys.SETTINGS] = settings
    app[keys.STORE] = job_store
    app[keys.REPOSITORY] = repository
    app[keys.SIO] = sockets
    app[keys.VERIFIER] = verifier
    app[keys.METRICS] = metrics
    app[keys.LIFECYCLE_METRICS] = lifecycle
    app[keys.JOBS_GAUGE] = JobsGauge(job_store)
    app[keys.IN_FLIGHT] = in_flight
    app[keys.HTTP_IN_FLIGHT] = InFlight()
    app[keys.SUPERVISOR] = Supervisor(
        repository, interval_s=settings.supervisor_interval_s, gate=_scan_gate(settings)
    )
    app[keys.READINESS_CHECKS] = [keys.ReadinessCheck(name="store", probe=job_store.ping)]

    install_limits(app, settings, sockets, verifier)
    wiring = NamespaceWiring(
        sockets=sockets,
        repository=repository,
        verifier=verifier,
        metrics=metrics,
        in_flight=in_flight,
    )
    for namespace in (user_namespace, worker_namespace):
        namespace.install(wiring)
    sockets.attach(app)
    add_routes(app)
    add_routes(app, Dashboard().routes())  # /ui/: not an API route, not in OpenAPI

    if owns_store:
        app.cleanup_ctx.append(_store_lifecycle)
    app.on_shutdown.append(_disconnect_sockets)
    if redis_manager is not None:
        _add_redis(app, redis_manager, publisher)
    app.cleanup_ctx.append(_socketio_lifecycle)
    app.cleanup_ctx.append(metrics_site)
    add_background_services(app)
    return app


__all__ = [
    "add_background_services",
    "build_store",
    "close_client_connections",
    "create_app",
]
