"""One claimed job from start to its last write: the handler task, its heartbeat loop, and
the final report (complete, fail, paused, or nothing when the lease is gone).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import traceback
from typing import Any

import attrs

from jobspine_shared.logcontext import bind
from jobspine_shared.models import MAX_ERROR_MESSAGE_LENGTH, JobRecord
from workers.sdk import errors
from workers.sdk.coalesce import ProgressCoalescer
from workers.sdk.config import WorkerConfig
from workers.sdk.context import Handler, LiveJobContext
from workers.sdk.lease import Lease
from workers.sdk.rpc import RpcCaller

log = logging.getLogger("workers.sdk.job")

HANDLER_ERROR_CODE = "handler_error"


@attrs.frozen(kw_only=True)
class LeasedJob:
    """A job this worker holds: what a successful ``claim`` ack hands over (the server's
    side of it is :class:`server.service.answers.Claimed`)."""

    job: JobRecord
    lease: str
    checkpoint: dict[str, Any] | None


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    #: The server revoked the lease (cancelled, recovered, claimed again): nothing written.
    LOST = "lost"
    #: Stopped for a worker shutdown after the grace period: nothing written; the server's
    #: supervisor recovers the stale job (paused when it has a checkpoint).
    SHUTDOWN = "shutdown"
    #: The final write was refused for a reason other than a lost lease.
    ABANDONED = "abandoned"


class _CancelReason(enum.StrEnum):
    LEASE_LOST = "lease_lost"
    PAUSE_TIMEOUT = "pause_timeout"
    SUPERVISION = "heartbeat loop died"


def failure_message(exc: BaseException, *, with_traceback: bool) -> str:
    """The exception's message (its type when empty), optionally with the traceback, within
    the contract's 4096 characters; a long traceback keeps its end, where the error is."""
    limit = MAX_ERROR_MESSAGE_LENGTH
    message = str(exc) or type(exc).__name__
    if len(message) > limit:
        return message[: limit - 1] + "…"
    if with_traceback:
        trace = "".join(traceback.format_exception(exc))
        room = limit - len(message) - 1
        if len(trace) > room:
            trace = "…" + trace[-(room - 1) :]
        message += "\n" + trace
    return message


class JobRun:
    """Runs ``handler`` for one claim and reports how it ended; :meth:`run` returns the
    :class:`Outcome`. Cancelling :meth:`run` is the hard stop: the handler is cancelled and
    nothing more is written."""

    def __init__(
        self,
        claim: LeasedJob,
        handler: Handler,
        connection: RpcCaller,
        config: WorkerConfig,
    ) -> None:
        self.job = claim.job
        self._handler = handler
        self._config = config
        self.lease = Lease(
            connection,
            job_id=claim.job.id,
            lease=claim.lease,
            on_lost=self._on_lost,
            on_ack=self._on_ack,
        )
        self.context = LiveJobContext(
            job=claim.job,
            checkpoint_data=claim.checkpoint,
            lease=self.lease,
            coalescer=ProgressCoalescer(
                min_delta=config.progress_min_delta,
                min_interval_s=config.progress_min_interval_s,
            ),
        )
        self._handler_task: asyncio.Task[Any] | None = None
        self._cancel_reason: _CancelReason | None = None
        self._pause_timer: asyncio.TimerHandle | None = None
        self.outcome: Outcome | None = None

    @property
    def label(self) -> str:
        return f"job {self.job.id} ({self.job.type})"

    def request_shutdown_checkpoint(self) -> None:
        """The worker is stopping: ask the handler to save and stop at its next pause point."""
        if self._handler_task is not None and not self._handler_task.done():
            log.info("%s: asking the handler to checkpoint before shutdown", self.label)
            self.context.request_pause(errors.PauseCause.SHUTDOWN)

    async def run(self) -> Outcome:
        # Run in a task of its own: every line it (and its handler) writes names the job.
        bind(
            job_id=self.job.id,
            correlation_id=self.job.correlation_id,
            worker_id=self._config.worker_id,
        )
        resumed = self.context.checkpoint_data is not None
        log.info(
            "%s: claimed, attempt %d%s",
            self.label,
            self.job.attempt,
            ", resuming from its checkpoint" if resumed else "",
        )
        handler_task = asyncio.create_task(
            self._handler(self.context), name=f"handler {self.job.type} {self.job.id}"
        )
        self._handler_task = handler_task
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat {self.job.id}")
        try:
            done, _ = await asyncio.wait(
                {handler_task, heartbeat}, return_when=asyncio.FIRST_COMPLETED
            )
            if handler_task not in done:
                # The heartbeat loop ends early only when the lease is lost (the handler is
                # being cancelled) or by a bug: never run a job without heartbeats.
                if self.lease.lost is None:
                    log.error("%s: heartbeat loop ended unexpectedly; stopping it", self.label)
                    self._cancel_handler(_CancelReason.SUPERVISION)
                await asyncio.wait({handler_task})
        except asyncio.CancelledError:
            handler_task.cancel()
            await asyncio.gather(handler_task, return_exceptions=True)
            log.info("%s: handler cancelled at the shutdown deadline", self.label)
            self.outcome = Outcome.SHUTDOWN
            raise
        finally:
            if self._pause_timer is not None:
                self._pause_timer.cancel()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        self.outcome = await self._finish(handler_task)
        return self.outcome

    # -- while the handler runs --------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """Heartbeat every ``heartbeat_interval_s`` (the handler need not report anything to
        stay alive); also flushes coalesced progress that became due."""
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s)
            try:
                await self.context.flush_progress(due_only=True)
                await self.lease.call("heartbeat")
            except errors.JobWithdrawn:
                return
            except errors.TransportError as exc:
                log.debug("%s: heartbeat not acknowledged (%s)", self.label, exc)
            except errors.RpcError as exc:
                log.warning("%s: heartbeat refused: %s", self.label, exc)

    def pause_pushed(self) -> None:
        """The server pushed ``job:pause_requested``: raise the pause at the next pause
        point now, not at the next heartbeat ack."""
        self._on_ack({"pause_requested": True})

    def revoked(self, state: str | None, reason: str | None) -> None:
        """The server pushed ``lease:revoked``: the lease is gone; cancel the handler."""
        details = {"state": state} if state else None
        self.lease.mark_lost(errors.JobWithdrawn("lease_lost", f"revoked ({reason})", details))

    def _on_ack(self, ack: dict[str, Any]) -> None:
        if ack.get("pause_requested") is True and self.context.pause_cause is None:
            log.info("%s: pause requested", self.label)
            self.context.request_pause(errors.PauseCause.USER)
            if self._config.pause_timeout_s is not None:
                self._pause_timer = asyncio.get_running_loop().call_later(
                    self._config.pause_timeout_s, self._on_pause_timeout
                )

    def _on_pause_timeout(self) -> None:
        log.warning(
            "%s: handler did not reach a pause point within %.1fs; cancelling it",
            self.label,
            self._config.pause_timeout_s,
        )
        self._cancel_handler(_CancelReason.PAUSE_TIMEOUT)

    def _on_lost(self, error: errors.JobWithdrawn) -> None:
        state = error.job_state
        log.info(
            "%s: stopped by the server (%s%s); cancelling the handler",
            self.label,
            error.code,
            f", job is {state}" if state else "",
        )
        self._cancel_handler(_CancelReason.LEASE_LOST)

    def _cancel_handler(self, reason: _CancelReason) -> None:
        task = self._handler_task
        if task is not None and not task.done():
            if self._cancel_reason is None:
                self._cancel_reason = reason
            task.cancel(str(reason))

    # -- the final report --------------------------------------------------------------------

    async def _finish(self, task: asyncio.Task[Any]) -> Outcome:
        if self.lease.lost is not None:
            return Outcome.LOST
        if task.cancelled():
            if self._cancel_reason is _CancelReason.PAUSE_TIMEOUT:
                return await self._report_paused()
            reason = self._cancel_reason or "the handler cancelled itself"
            return await self._report_failed(f"handler was cancelled ({reason})")
        exc = task.exception()
        if exc is None:
            return await self._report_completed(task.result())
        if isinstance(exc, errors.PauseRequested):
            if exc.cause is errors.PauseCause.SHUTDOWN:
                log.info(
                    "%s: stopped for shutdown; the server's supervisor will pause it", self.label
                )
                return Outcome.SHUTDOWN
            if self.context.pause_cause is not None:
                return await self._report_paused()
            return await self._report_failed(
                "handler raised PauseRequested, but no pause was requested"
            )
        if isinstance(exc, errors.RetryableError):
            message = failure_message(exc, with_traceback=False)
            return await self._report_failed(message, code=exc.code, retryable=True)
        message = failure_message(exc, with_traceback=self._config.send_tracebacks)
        log.debug("%s: handler raised %s: %s", self.label, type(exc).__name__, exc)
        return await self._report_failed(message)

    async def _final_write(
        self, event: str, target: str | frozenset[str], **fields: Any
    ) -> Outcome | None:
        """Send a state-changing write reliably; None when it was accepted.

        A retried write may have landed before its ack was lost: ``lease_lost`` naming the
        state we were moving to is then a success.
        """
        try:
            await self.lease.call_reliably(event, **fields)
        except errors.JobWithdrawn as exc:
            if exc.job_state in ({target} if isinstance(target, str) else target):
                return None
            return Outcome.LOST
        except errors.RpcError as exc:
            log.error("%s: %s refused: %s", self.label, event, exc)
            return Outcome.ABANDONED
        return None

    async def _report_completed(self, result: Any) -> Outcome:
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return await self._report_failed(f"handler returned a result that is not JSON: {exc}")
        await self.context.flush_progress(reliably=True)
        refused = await self._final_write("complete", "completed", result=result)
        if refused is not None:
            return refused
        log.info("%s: completed", self.label)
        return Outcome.COMPLETED

    async def _report_failed(
        self, message: str, *, code: str = HANDLER_ERROR_CODE, retryable: bool = False
    ) -> Outcome:
        error = {"message": message, "code": code, "retryable": retryable}
        # A retryable failure the server retried leaves the job created (contract v2).
        targets = frozenset({"failed", "created"}) if retryable else frozenset({"failed"})
        refused = await self._final_write("fail", targets, error=error)
        if refused is not None:
            return refused
        log.info("%s: failed: %s", self.label, message.splitlines()[0] if message else "")
        return Outcome.FAILED

    async def _report_paused(self) -> Outcome:
        await self.context.flush_progress(reliably=True)
        fields: dict[str, Any] = {}
        if self.context.latest_checkpoint is not None and not self.context.latest_checkpoint_saved:
            fields["checkpoint"] = self.context.latest_checkpoint
        refused = await self._final_write("paused", "paused", **fields)
        if refused is not None:
            return refused
        log.info("%s: paused", self.label)
        return Outcome.PAUSED
