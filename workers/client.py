"""The terminal watcher of one job: ``JobWatcher`` follows it with the Python client
(:mod:`jobspine_client`, which does the replay: cursors, dedupe, gaps, epochs, reconnects,
token refresh) and ``TerminalView`` draws it; ``scripts/watch_job.py`` is the command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from jobspine_client import JobspineClient, JobspineError, Status, Storage
from jobspine_client.connection import SocketFactory, default_socket
from jobspine_client.stream import JobStream
from jobspine_client.tokens import TokenSource
from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.models import JobRecord
from jobspine_shared.states import ENDED_STATES, FINAL_STATES, JobState

# -- rendering ------------------------------------------------------------------------------


def progress_bar(progress: float, width: int = 20) -> str:
    filled = max(0, min(width, int(progress / 100 * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_line(job: JobRecord, *, width: int = 20, max_length: int = 120) -> str:
    """``[#####.....] 42.5% step 2/5: …  state=running``, cut to ``max_length``."""
    step = f" {job.step}" if job.step else ""
    line = f"{progress_bar(job.progress, width)} {job.progress:.1f}%{step}  state={job.state}"
    if len(line) > max_length:
        line = line[: max_length - 1] + "…"
    return line


def state_line(job: JobRecord) -> str:
    """One line for a state the job entered."""
    if job.state is JobState.COMPLETED:
        return f"completed: result={job.result!r:.200}"
    if job.state is JobState.FAILED:
        error = job.error
        detail = f"{error.code}: {error.message}" if error else "no error details"
        return f"failed: {detail}"
    if job.state is JobState.RUNNING:
        return f"running (attempt {job.attempt})"
    return str(job.state)


def event_note(event: Mapping[str, Any]) -> str | None:
    """A line for what the state line alone does not tell: why a job paused, how it can be
    recovered, and what a resume or restart means for it; None for other events."""
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    kind = event.get("type")
    if kind == EventType.PAUSED:
        if data.get("reason") == PauseReason.STALLED:
            return "  its worker stopped sending heartbeats (stalled)"
        return "  paused at a user's request"
    if kind == EventType.RECOVERY:
        return _recovery_note(str(event.get("job_id")), data)
    if kind == EventType.RESUMED:
        return "  resumed: waiting for a worker to continue from the checkpoint"
    if kind == EventType.RESTARTED:
        return "  restarted: waiting for a worker to start from scratch"
    return None


def _recovery_note(job_id: str, options: Mapping[str, Any]) -> str:
    raw = options.get("checkpoint")
    checkpoint: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    progress = checkpoint.get("progress")
    at = f" at {progress:.1f}%" if isinstance(progress, int | float) else ""
    attempts = (
        f" (recovery {options['recovery_attempts']} of {options['max_recovery_attempts']})"
        if isinstance(options.get("recovery_attempts"), int)
        and isinstance(options.get("max_recovery_attempts"), int)
        else ""
    )
    if options.get("resumable") is True:
        return (
            f"  resumable from its checkpoint{at}{attempts}: "
            f"POST /api/jobs/{job_id}/resume continues it"
        )
    if options.get("restartable") is True:
        return f"  not resumable{attempts}: POST /api/jobs/{job_id}/restart starts it again"
    return f"  not recoverable{attempts}"


class TerminalView:
    """Draws a one-line progress bar that state changes interrupt with their own lines."""

    def __init__(self, out: TextIO, *, width: int = 20, max_length: int = 120) -> None:
        self._out = out
        self._width = width
        self._max_length = max_length
        self._bar_shown = 0
        self._bar_line = ""
        self._last_state: JobState | None = None

    def show(self, job: JobRecord) -> None:
        if job.state is not self._last_state:
            self._state_change(state_line(job))
            self._last_state = job.state
        if job.state not in FINAL_STATES:
            line = progress_line(job, width=self._width, max_length=self._max_length)
            if line != self._bar_line:
                self._out.write("\r" + line.ljust(self._bar_shown))
                self._bar_shown, self._bar_line = len(line), line
                self._out.flush()

    def message(self, text: str) -> None:
        """A line in place of the bar, which is drawn again below it: notes stack up above
        the live bar."""
        if self._bar_shown:
            self._out.write("\r" + text.ljust(self._bar_shown) + "\n" + self._bar_line)
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def _state_change(self, text: str) -> None:
        """A line below the bar, which stays as the record of where the state changed."""
        if self._bar_shown:
            self._out.write("\n")
            self._bar_shown, self._bar_line = 0, ""
        self._out.write(text + "\n")
        self._out.flush()


# -- the watcher ----------------------------------------------------------------------------


class WatchError(Exception):
    """The job cannot be watched (refused token, unknown job…); the message says why."""


class JobWatcher:
    """Follows a job until it ends (or forever with ``follow``), telling ``on_change`` each
    state and ``on_message`` what a state alone does not say (why it paused, a lost
    connection, a history that could not be replayed)."""

    def __init__(
        self,
        *,
        url: str,
        token: TokenSource,
        job_id: str,
        on_change: Callable[[JobRecord], None] = lambda _: None,
        on_message: Callable[[str], None] = lambda _: None,
        follow: bool = False,
        ack_timeout_s: float = 10.0,
        storage: Storage | None = None,
        socket_factory: SocketFactory = default_socket,
        reconnect_initial_s: float = 0.5,
    ) -> None:
        self.job_id = job_id
        self.follow = follow
        self._on_change = on_change
        self._on_message = on_message
        self.client = JobspineClient(
            url,
            token,
            storage,
            ack_timeout_s=ack_timeout_s,
            socket_factory=socket_factory,
            reconnect_initial_s=reconnect_initial_s,
            reconnect_max_s=max(reconnect_initial_s, 5.0),
        )
        self.stream: JobStream | None = None

    async def run(self) -> JobRecord:
        """Watch until the job ends; returns its last known state."""
        outcome: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        self.client.on("status", lambda status: self._status(status, outcome))
        try:
            await self.client.connect()
        except JobspineError as exc:
            raise WatchError(f"cannot connect to {self.client.url}: {exc}") from None
        try:
            watch = self.client.watch(self.job_id)
            self.stream = watch.stream
            watch.on("change", lambda job: self._changed(job, outcome))
            watch.on("event", self._note)
            watch.on(
                "reset",
                lambda _: self._on_message(
                    "history not recoverable; restarted from the job's snapshot"
                ),
            )
            try:
                await watch.ready
            except JobspineError as exc:
                raise WatchError(f"job:subscribe refused: {exc}") from None
            return await outcome
        finally:
            await self.client.close()

    def _status(self, status: Status, outcome: asyncio.Future[JobRecord]) -> None:
        if status is Status.RECONNECTING:
            self._on_message("connection lost; reconnecting…")
        elif status is Status.EXPIRED and not outcome.done():
            outcome.set_exception(WatchError("the session expired and no new token was given"))

    def _changed(self, job: JobRecord, outcome: asyncio.Future[JobRecord]) -> None:
        self._on_change(job)
        if job.state in ENDED_STATES and not self.follow and not outcome.done():
            outcome.set_result(job)

    def _note(self, event: Mapping[str, Any]) -> None:
        note = event_note(event)
        if note is not None:
            self._on_message(note)


def exit_status(job: JobRecord) -> int:
    """0 when the job completed, 1 when it failed or was cancelled, 3 otherwise."""
    if job.state is JobState.COMPLETED:
        return 0
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        return 1
    return 3


__all__ = [
    "JobWatcher",
    "TerminalView",
    "WatchError",
    "event_note",
    "exit_status",
    "progress_line",
    "state_line",
]
