"""What a handler sees of its job: :class:`JobContext` (the interface) and the SDK's
implementation, :class:`LiveJobContext`.

Handlers are written against the protocol, so a test can pass any object with the same
members (a fake context) without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, Protocol

from jobspine_shared import values
from jobspine_shared.checks import ValueCheckError
from jobspine_shared.errors import ErrorCode
from jobspine_shared.models import MAX_STEP_LENGTH, JobRecord
from workers.sdk.coalesce import ProgressCoalescer, ProgressUpdate
from workers.sdk.errors import (
    CheckpointTooLarge,
    JobWithdrawn,
    RpcError,
    TransportError,
)
from workers.sdk.job_view import JobView
from workers.sdk.lease import TRANSIENT_CODES, Lease

log = logging.getLogger("workers.sdk.context")


class JobContext(Protocol):
    """A running job, as its handler sees it.

    Pause points: :meth:`checkpoint` (right after the checkpoint is saved, so nothing is lost)
    and :meth:`pause_point` raise :class:`PauseRequested` once after a pause was requested or
    the worker began shutting down. :meth:`progress` is not a pause point: in the common
    "report progress, then checkpoint" loop, stopping between the two would lose a step.
    """

    @property
    def job(self) -> JobRecord:
        """The job as claimed (``job.input`` is the handler's input)."""
        ...

    @property
    def attempt(self) -> int:
        """This attempt's number (1 for the first claim; resumes and retries count)."""
        ...

    @property
    def retries(self) -> int:
        """Automatic retries made before this attempt (contract v2)."""
        ...

    @property
    def deadline(self) -> datetime | None:
        """When this attempt's ``timeout_s`` runs out (server time), or None without one."""
        ...

    @property
    def checkpoint_data(self) -> dict[str, Any] | None:
        """The checkpoint this attempt resumes from, or None for a fresh start."""
        ...

    @property
    def pause_requested(self) -> bool:
        """True once the handler should save and stop (a user's pause, or a shutdown)."""
        ...

    async def wait_for_pause_request(self) -> None:
        """Return when :attr:`pause_requested` becomes true (e.g. to race a long wait)."""
        ...

    async def progress(self, value: float, step: str | None = None) -> None:
        """Report progress in [0, 100] (never lower than before in this attempt) and an
        optional step text; reports are coalesced, the last one always reaches the server."""
        ...

    async def checkpoint(self, data: Mapping[str, Any], progress: float | None = None) -> None:
        """Save ``data`` (a JSON object) durably for a later attempt to resume from; waits
        through reconnects until the server has it. A pause point."""
        ...

    async def pause_point(self) -> None:
        """Raise :class:`PauseRequested` if the handler should stop now; else return."""
        ...


def check_progress(value: float, floor: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"progress must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ValueError(f"progress must be a finite number in [0, 100], got {value!r}")
    if value < floor:
        raise ValueError(f"progress may not go down within an attempt ({float(value)} < {floor})")
    return float(value)


def check_step(step: str | None) -> str | None:
    """Step texts are display text; an over-long one is shortened rather than refused."""
    if step is None:
        return None
    if not isinstance(step, str):
        raise TypeError(f"step must be a string, got {type(step).__name__}")
    if len(step) > MAX_STEP_LENGTH:
        return step[: MAX_STEP_LENGTH - 1] + "…"
    return step


def json_object_copy(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A detached copy of a JSON object, or a clear error naming what is wrong.

    Checked here because the server answers a malformed write with ``validation_error``,
    which for a worker means "stop this job"; a handler bug should fail the job instead.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"{what} must be a JSON object (a mapping), got {type(data).__name__}")
    try:
        text = json.dumps(dict(data), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-encodable: {exc}") from None
    copy: dict[str, Any] = json.loads(text)
    # The server's own value rules (jobspine_shared.values): what it would refuse with
    # validation_error (NUL, deep nesting, huge numbers) fails the job here, clearly.
    try:
        values.encoded_size(copy, what)
    except ValueCheckError as exc:
        raise ValueError(str(exc)) from None
    return copy


class LiveJobContext(JobView):
    """The SDK's :class:`JobContext`: writes go through the job's fenced :class:`Lease`."""

    def __init__(
        self,
        *,
        job: JobRecord,
        checkpoint_data: dict[str, Any] | None,
        lease: Lease,
        coalescer: ProgressCoalescer,
    ) -> None:
        super().__init__(job, checkpoint_data)
        self._lease = lease
        self._coalescer = coalescer
        self._send_lock = asyncio.Lock()
        #: The latest checkpoint the handler asked for, and whether the server has it.
        self.latest_checkpoint: dict[str, Any] | None = None
        self.latest_checkpoint_saved = True

    # -- the handler's side ------------------------------------------------------------------

    async def progress(self, value: float, step: str | None = None) -> None:
        checked = check_progress(value, self._floor)
        text = check_step(step)
        self._raise_if_lost()
        self._floor = checked
        update = self._coalescer.offer(checked, text)
        if update is not None:
            async with self._send_lock:
                try:
                    await self._send_progress(update)
                except JobWithdrawn as exc:
                    raise self._cancelled(exc) from None

    async def checkpoint(self, data: Mapping[str, Any], progress: float | None = None) -> None:
        copy = json_object_copy(data, "checkpoint data")
        checked = None if progress is None else check_progress(progress, self._floor)
        self._raise_if_lost()
        if checked is not None:
            self._floor = checked
        before = self.latest_checkpoint, self.latest_checkpoint_saved
        # Until the server confirms, this is the checkpoint a pause (``paused``) would carry.
        self.latest_checkpoint, self.latest_checkpoint_saved = copy, False
        fields: dict[str, Any] = {"data": copy}
        if checked is not None:
            fields["progress"] = checked
        async with self._send_lock:
            try:
                await self._flush_locked(due_only=False)
                await self._lease.call_reliably("checkpoint", **fields)
            except JobWithdrawn as exc:
                raise self._cancelled(exc) from None
            except RpcError as exc:
                self.latest_checkpoint, self.latest_checkpoint_saved = before
                if exc.code == ErrorCode.PAYLOAD_TOO_LARGE:
                    raise CheckpointTooLarge(exc.code, exc.message, exc.details) from None
                raise
        if self.latest_checkpoint is copy:
            self.latest_checkpoint_saved = True
        if checked is not None:
            self._coalescer.superseded(checked)
        self._deliver_pause()

    async def pause_point(self) -> None:
        self._raise_if_lost()
        self._deliver_pause()

    # -- the SDK's side ----------------------------------------------------------------------

    async def flush_progress(self, *, due_only: bool = False, reliably: bool = False) -> None:
        """Send the pending progress report, if any: only when due (the heartbeat tick) or in
        any case; ``reliably`` retries through reconnects (before a final write, so the last
        value always goes out). A lost lease ends it quietly: the run handles that."""
        if due_only and self._send_lock.locked():
            return  # a write is under way (maybe retrying); never hold up the heartbeat
        async with self._send_lock:
            if reliably:
                update = self._coalescer.take_pending()
                if update is not None:
                    with contextlib.suppress(JobWithdrawn):
                        await self._lease.call_reliably(
                            "progress", progress=update.value, step=update.step
                        )
                        self._coalescer.sent(update)
                return
            with contextlib.suppress(JobWithdrawn):
                await self._flush_locked(due_only=due_only)

    async def _flush_locked(self, *, due_only: bool) -> None:
        update = self._coalescer.take_due() if due_only else self._coalescer.take_pending()
        if update is not None:
            await self._send_progress(update)

    async def _send_progress(self, update: ProgressUpdate) -> None:
        """One attempt; raises :class:`JobWithdrawn`, keeps the report pending when unanswered."""
        try:
            await self._lease.call("progress", progress=update.value, step=update.step)
        except TransportError as exc:
            log.debug("job %s: progress kept for later (%s)", self._job.id, exc)
            return
        except RpcError as exc:
            if exc.code in TRANSIENT_CODES:
                return
            log.warning("job %s: progress %.1f refused: %s", self._job.id, update.value, exc)
        self._coalescer.sent(update)

    def _raise_if_lost(self) -> None:
        if self._lease.lost is not None:
            raise self._cancelled(self._lease.lost)

    @staticmethod
    def _cancelled(exc: JobWithdrawn) -> asyncio.CancelledError:
        """The lease is gone (the SDK is cancelling the handler task): unwind like a cancel."""
        return asyncio.CancelledError(f"job lease lost: {exc}")


#: A job handler: ``async def handle(ctx: JobContext) -> result`` (a JSON value).
Handler = Callable[[JobContext], Coroutine[Any, Any, Any]]
