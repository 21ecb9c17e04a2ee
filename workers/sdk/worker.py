"""The worker: claims jobs of its registered types and runs their handlers.

Two named side tasks run for the worker's lifetime, the connection (reconnects with backoff)
and the claim loop; each claimed job runs as its own task with its own heartbeat loop. If a
side task dies, the whole worker stops, rather than limping on without, say, claiming.

Stopping (``stop()``, e.g. on SIGTERM): claiming stops at once; running handlers get
``grace_period_s`` to finish and report. Those still running are then asked to checkpoint
(``PauseRequested(SHUTDOWN)`` at their next pause point) for ``shutdown_checkpoint_s``, then
cancelled, and the worker disconnects without further writes. Such a job stops sending
heartbeats, so after ``HEARTBEAT_TIMEOUT_S`` the server's supervisor recovers it: paused
(``reason: stalled``) when it has a checkpoint, ready for a user's resume, which continues from
that checkpoint; failed with ``worker_lost`` when it has none.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from jobspine_shared.logcontext import bind
from jobspine_shared.models import JOB_TYPE_PATTERN
from jobspine_shared.wire import job_from_wire
from workers.sdk.backoff import Backoff, jittered
from workers.sdk.config import WorkerConfig
from workers.sdk.context import Handler
from workers.sdk.errors import RpcError, TransportError
from workers.sdk.job_run import JobRun, LeasedJob, Outcome
from workers.sdk.rpc import WorkerConnection
from workers.sdk.waiting import wait_any

log = logging.getLogger("workers.sdk.worker")


class WorkerStopped(Exception):
    """The worker stopped because a side task failed (e.g. the token was refused)."""


class Worker:
    """Claims and runs jobs; see the module docstring for the lifecycle.

    Usage::

        worker = Worker(WorkerConfig(url=..., token=...))

        @worker.handler("research")
        async def research(ctx: JobContext) -> dict[str, Any]:
            ...

        await worker.run()          # until worker.stop()
    """

    def __init__(
        self,
        config: WorkerConfig,
        *,
        connection: WorkerConnection | None = None,
    ) -> None:
        self.config = config
        self.connection = connection or WorkerConnection(
            url=config.url,
            token=config.token,
            namespace=config.namespace,
            ack_timeout_s=config.ack_timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            backoff=Backoff(config.reconnect_initial_s, config.reconnect_max_s),
            transports=config.transports,
        )
        self._handlers: dict[str, Handler] = {}
        self._stop_requested = asyncio.Event()
        self._slot_freed = asyncio.Event()
        #: Set by the server's ``jobs:available`` push: claim now instead of at the next poll.
        self._jobs_available = asyncio.Event()
        self.connection.on_push("jobs:available", lambda _: self._jobs_available.set())
        self.connection.on_push("lease:revoked", self._on_revoked)
        self.connection.on_push("job:pause_requested", self._on_pause_pushed)
        self._runs: dict[asyncio.Task[Outcome], JobRun] = {}
        self._running = False
        #: How many runs ended with each outcome, and the latest ones (job id, outcome).
        self.outcomes: collections.Counter[Outcome] = collections.Counter()
        self.recent: collections.deque[tuple[str, Outcome]] = collections.deque(maxlen=100)

    # -- registration ------------------------------------------------------------------------

    def register(self, job_type: str, handler: Handler) -> None:
        """Run ``handler`` for jobs of ``job_type`` (1-64 characters of ``[a-z0-9_.-]``)."""
        if not JOB_TYPE_PATTERN.fullmatch(job_type):
            raise ValueError(f"job type {job_type!r}: 1 to 64 characters of [a-z0-9_.-]")
        if job_type in self._handlers:
            raise ValueError(f"a handler for {job_type!r} is already registered")
        if self._running:
            raise RuntimeError("register handlers before run()")
        self._handlers[job_type] = handler

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`register`."""

        def decorate(handler: Handler) -> Handler:
            self.register(job_type, handler)
            return handler

        return decorate

    @property
    def types(self) -> list[str]:
        return sorted(self._handlers)

    @property
    def running_jobs(self) -> list[JobRun]:
        return list(self._runs.values())

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful stop; safe to call more than once and from a signal handler."""
        if not self._stop_requested.is_set():
            log.info("stopping: no new claims; waiting for %d running job(s)", len(self._runs))
        self._stop_requested.set()

    async def run(self) -> None:
        """Connect, claim and run jobs until :meth:`stop`; then shut down gracefully.

        Raises :class:`WorkerStopped` (from the cause) when a side task failed, e.g. the
        server refused the token.
        """
        if not self._handlers:
            raise RuntimeError("no handlers registered")
        if self._running:
            raise RuntimeError("this worker is already running")
        self._running = True
        bind(worker_id=self.config.worker_id)  # on every line of this worker's task
        log.info(
            "worker %s: types %s, concurrency %d",
            self.config.worker_id,
            ",".join(self.types),
            self.config.concurrency,
        )
        side_tasks = {
            asyncio.create_task(self.connection.run(), name="connection"),
            asyncio.create_task(self._claim_loop(), name="claim loop"),
        }
        stop_waiter = asyncio.create_task(self._stop_requested.wait(), name="stop waiter")
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(
                side_tasks | {stop_waiter}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done - {stop_waiter}:
                failure = failure or _side_task_failure(
                    task, stopping=self._stop_requested.is_set()
                )
            self.stop()
            await self._shutdown(side_tasks, immediate=failure is not None)
        finally:
            stop_waiter.cancel()
            for task in side_tasks:
                task.cancel()
            await asyncio.gather(stop_waiter, *side_tasks, return_exceptions=True)
            await self._abort_runs()
        if failure is not None:
            raise WorkerStopped(str(failure)) from failure
        log.info("worker %s stopped", self.config.worker_id)

    async def _shutdown(self, side_tasks: set[asyncio.Task[None]], *, immediate: bool) -> None:
        claim_loop = next(t for t in side_tasks if t.get_name() == "claim loop")
        # The claim loop ends by itself once it sees the stop; a claim in flight is answered
        # (and its job run) rather than abandoned with a lease nobody uses.
        await asyncio.wait({claim_loop}, timeout=self.config.ack_timeout_s + 1)
        if immediate:
            return
        if self._runs and not await self._wait_runs(self.config.grace_period_s):
            for run in self._runs.values():
                run.request_shutdown_checkpoint()
            await self._wait_runs(self.config.shutdown_checkpoint_s)
        await self._abort_runs()
        await self.connection.close()
        connection = next(t for t in side_tasks if t.get_name() == "connection")
        # Let it say goodbye to the server (a clean disconnect) before it is cancelled.
        await asyncio.wait({connection}, timeout=self.config.connect_timeout_s + 1)

    async def _wait_runs(self, within_s: float) -> bool:
        """Wait until every running job finished; False when ``within_s`` passed first."""
        if not self._runs:
            return True
        _, pending = await asyncio.wait(set(self._runs), timeout=within_s)
        return not pending

    async def _abort_runs(self) -> None:
        """The hard deadline: cancel whatever still runs; those jobs write nothing more."""
        tasks = list(self._runs)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- claiming ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stop_requested.is_set():
            if len(self._runs) >= self.config.concurrency:
                self._slot_freed.clear()
                await wait_any(self._slot_freed, self._stop_requested)
                continue
            if not self.connection.connected:
                await wait_any(self.connection.connected_event, self._stop_requested)
                continue
            try:
                claim = await self._claim()
            except TransportError as exc:
                log.debug("claim not acknowledged: %s", exc)
                await self._idle()
                continue
            except RpcError as exc:
                log.warning("claim refused: %s", exc)
                await self._idle()
                continue
            if claim is None:
                await self._idle()
            else:
                self._start(claim)

    async def _idle(self) -> None:
        """Wait a jittered poll interval, or until the server says jobs are available, or
        until stopped: never busy-loop on an idle queue."""
        delay = jittered(self.config.poll_interval_s, self.config.poll_jitter)
        await wait_any(self._stop_requested, self._jobs_available, within_s=delay)

    def _run_of(self, data: Any) -> JobRun | None:
        job_id = data.get("job_id") if isinstance(data, dict) else None
        return next((run for run in self._runs.values() if run.job.id == job_id), None)

    def _on_revoked(self, data: Any) -> None:
        run = self._run_of(data)
        if run is not None:
            run.revoked(data.get("state"), data.get("reason"))

    def _on_pause_pushed(self, data: Any) -> None:
        run = self._run_of(data)
        if run is not None:
            run.pause_pushed()

    async def _claim(self) -> LeasedJob | None:
        self._jobs_available.clear()  # a push after this claim's answer wakes the next one
        ack = await self.connection.call(
            "claim", {"types": self.types, "worker_id": self.config.worker_id}
        )
        job, lease, checkpoint = ack.get("job"), ack.get("lease"), ack.get("checkpoint")
        if job is None:
            return None
        if not isinstance(job, dict) or not isinstance(lease, str):
            raise RpcError("protocol_error", f"malformed claim ack: {ack!r:.200}")
        record = job_from_wire(job)
        if checkpoint is not None and not isinstance(checkpoint, dict):
            raise RpcError("protocol_error", "claim ack: checkpoint is not an object")
        return LeasedJob(job=record, lease=lease, checkpoint=checkpoint)

    def _start(self, claim: LeasedJob) -> None:
        handler = self._handlers.get(claim.job.type)
        if handler is None:
            handler = _unregistered_type_handler
        run = JobRun(claim, handler, self.connection, self.config)
        task = asyncio.create_task(run.run(), name=f"job {claim.job.id}")
        self._runs[task] = run
        task.add_done_callback(self._run_finished)

    def _run_finished(self, task: asyncio.Task[Outcome]) -> None:
        run = self._runs.pop(task)
        outcome = Outcome.SHUTDOWN
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                log.error("%s: run crashed", run.label, exc_info=exc)
                outcome = Outcome.ABANDONED
            else:
                outcome = task.result()
        self.outcomes[outcome] += 1
        self.recent.append((run.job.id, outcome))
        self._slot_freed.set()


async def _unregistered_type_handler(ctx: Any) -> Any:
    raise LookupError(f"this worker has no handler for job type {ctx.job.type!r}")


def _side_task_failure(task: asyncio.Task[Any], *, stopping: bool) -> BaseException | None:
    """Why a side task ended, or None when it ended because the worker is stopping."""
    if task.cancelled():
        return RuntimeError(f"{task.get_name()} was cancelled")
    exc = task.exception()
    if exc is None:
        return None if stopping else RuntimeError(f"{task.get_name()} ended unexpectedly")
    log.error("%s failed: %s", task.get_name(), exc)
    return exc
