"""The reference Python client for following one job's event stream.

:class:`JobStreamFollower` is the replay logic, pure and unit-tested: it keeps the job's
latest known state and the cursor (``seq``, ``epoch``), drops duplicates, detects gaps and
epoch changes, and says when to resync. :class:`JobWatcher` wires it to a Socket.IO
connection on ``/``; ``scripts/watch_job.py`` renders it in a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import socketio

from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.models import JobError, JobRecord
from jobspine_shared.states import FINAL_STATES, JobState
from jobspine_shared.wire import job_from_wire, parse_time
from workers.sdk.rpc import MAX_MESSAGE_BYTES, TokenSource, token_source

log = logging.getLogger("workers.client")

#: States after which a watcher without ``--follow`` stops.
END_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class Verdict(enum.StrEnum):
    """What :meth:`JobStreamFollower.on_event` did with an event."""

    APPLIED = "applied"
    #: Already seen (``seq`` at or below the cursor): dropped.
    DUPLICATE = "duplicate"
    #: Another job's event (a user socket receives all of its user's jobs): ignored.
    OTHER_JOB = "other_job"
    #: Not applicable yet: no snapshot to apply it to (a subscribe is pending).
    EARLY = "early"
    #: A seq gap or another epoch: the caller re-subscribes from the cursor.
    RESYNC = "resync"


def _error(data: Any) -> JobError | None:
    if not isinstance(data, Mapping):
        return None
    return JobError(
        code=str(data.get("code", "")),
        message=str(data.get("message", "")),
        retryable=bool(data.get("retryable", False)),
    )


def apply_event(job: JobRecord, event: Mapping[str, Any]) -> JobRecord:
    """The job after ``event`` (one seq further), as far as events tell."""
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    changes: dict[str, Any] = {"seq": event["seq"]}
    at = event.get("at")
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            changes["updated_at"] = parse_time(at)
    kind = event.get("type")
    if kind == EventType.CREATED:
        changes["state"] = JobState.CREATED
    elif kind == EventType.STARTED:
        changes.update(state=JobState.RUNNING, pause_requested=False)
        if isinstance(data.get("attempt"), int):
            changes["attempt"] = data["attempt"]
    elif kind == EventType.PROGRESS:
        changes.update(progress=float(data.get("progress", job.progress)), step=data.get("step"))
    elif kind == EventType.CHECKPOINT:
        changes["has_checkpoint"] = True
        changes["checkpoint_at"] = changes.get("updated_at", job.updated_at)
        if isinstance(data.get("progress"), int | float):
            changes["progress"] = float(data["progress"])
    elif kind == EventType.PAUSE_REQUESTED:
        changes["pause_requested"] = True
    elif kind == EventType.PAUSED:
        changes.update(state=JobState.PAUSED, pause_requested=False)
    elif kind == EventType.RESUMED:
        changes["state"] = JobState.CREATED
    elif kind == EventType.COMPLETED:
        changes.update(state=JobState.COMPLETED, result=data.get("result"), progress=100.0)
    elif kind == EventType.FAILED:
        changes.update(state=JobState.FAILED, error=_error(data.get("error")))
    elif kind == EventType.CANCELLED:
        changes["state"] = JobState.CANCELLED
    elif kind == EventType.RESTARTED:
        changes.update(
            state=JobState.CREATED,
            progress=0.0,
            step=None,
            result=None,
            error=None,
            has_checkpoint=False,
            checkpoint_at=None,
        )
    return job.evolve(**changes)


class JobStreamFollower:
    """Follows one job's stream across reconnects, gaps and lost histories.

    Feed it every subscribe ack (:meth:`on_subscribed`) and every live event
    (:meth:`on_event`); send :meth:`subscribe_payload` on every (re)connect and whenever
    :meth:`on_event` answers :attr:`Verdict.RESYNC`.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.job: JobRecord | None = None
        #: How often the stream had to restart from a snapshot (``recovered`` false).
        self.snapshots = 0

    @property
    def last_seq(self) -> int | None:
        return None if self.job is None else self.job.seq

    @property
    def epoch(self) -> str | None:
        return None if self.job is None else self.job.epoch

    def subscribe_payload(self) -> dict[str, Any]:
        """``{job_id}``, plus ``after_seq`` and ``epoch`` once something was seen."""
        payload: dict[str, Any] = {"job_id": self.job_id}
        if self.job is not None:
            payload.update(after_seq=self.job.seq, epoch=self.job.epoch)
        return payload

    def on_subscribed(self, ack: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Apply a ``job:subscribe`` ack; returns the replayed events that were applied.

        ``recovered`` true: the events continue our cursor (already-seen ones are dropped).
        Otherwise, or on a fresh start: the snapshot is the truth to start from.
        """
        snapshot = job_from_wire(ack["job"])
        if not ack.get("recovered") or self.job is None or snapshot.epoch != self.job.epoch:
            self.job = snapshot
            self.snapshots += 1
            return []
        applied = []
        for event in ack.get("events", []):
            verdict = self.on_event(event)
            if verdict is Verdict.APPLIED:
                applied.append(event)
            elif verdict is Verdict.RESYNC:
                # A replay with a hole cannot happen by contract; the snapshot is safe.
                self.job = snapshot
                self.snapshots += 1
                return []
        return applied

    def on_event(self, event: Mapping[str, Any]) -> Verdict:
        if event.get("job_id") != self.job_id:
            return Verdict.OTHER_JOB
        if self.job is None:
            return Verdict.EARLY
        seq = event.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            return Verdict.RESYNC
        if event.get("epoch") != self.job.epoch:
            return Verdict.RESYNC
        if seq <= self.job.seq:
            return Verdict.DUPLICATE
        if seq != self.job.seq + 1:
            return Verdict.RESYNC
        self.job = apply_event(self.job, event)
        return Verdict.APPLIED


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


# -- the socket client ----------------------------------------------------------------------


class WatchError(Exception):
    """The job cannot be watched (refused token, unknown job…); the message says why."""


class JobWatcher:
    """Follows a job over Socket.IO until it ends (or forever with ``follow``).

    Reconnects are python-socketio's; each (re)connect re-subscribes from the follower's
    cursor. Socket callbacks only enqueue; one loop applies everything in order, so a replay
    and live events that raced it are merged without duplicates.
    """

    def __init__(
        self,
        *,
        url: str,
        token: str | TokenSource,
        job_id: str,
        on_change: Callable[[JobRecord], None] = lambda _: None,
        on_message: Callable[[str], None] = lambda _: None,
        follow: bool = False,
        ack_timeout_s: float = 10.0,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.url = url
        #: Asked at every (re)connect: after the server's ``session:expired`` the watcher
        #: reconnects with the source's current token (a callable, or a token file).
        self._token = token_source(token)
        self.follower = JobStreamFollower(job_id)
        self._on_change = on_change
        self._on_message = on_message
        self.follow = follow
        self.ack_timeout_s = ack_timeout_s
        self._client_factory = client_factory or (
            lambda: socketio.AsyncClient(
                reconnection=True,
                handle_sigint=False,
                websocket_extra_options={"max_msg_size": MAX_MESSAGE_BYTES},
            )
        )
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.resyncs = 0

    async def run(self) -> JobRecord:
        """Watch until the job ends; returns its last known state."""
        client = self._client_factory()
        refusal: list[Any] = []
        client.on("connect", lambda: self._inbox.put_nowait(("connect", None)), namespace="/")
        client.on(
            "disconnect", lambda *_: self._inbox.put_nowait(("disconnect", None)), namespace="/"
        )
        client.on("connect_error", lambda data=None: refusal.append(data), namespace="/")
        client.on(
            "session:expired", lambda *_: self._inbox.put_nowait(("expired", None)), namespace="/"
        )
        for kind in EventType:
            client.on(kind.value, self._enqueue_event, namespace="/")
        await self._connect(client, refusal)
        try:
            return await self._loop(client, refusal)
        finally:
            await client.disconnect()

    async def _connect(self, client: Any, refusal: list[Any]) -> None:
        refusal.clear()
        try:
            await client.connect(
                self.url,
                auth=lambda: {"token": self._token()},
                namespaces=["/"],
                transports=["websocket"],
            )
        except socketio.exceptions.ConnectionError as exc:
            raise WatchError(
                f"cannot connect to {self.url}: {_refusal_text(refusal, exc)}"
            ) from None

    def _enqueue_event(self, data: Any = None) -> None:
        if isinstance(data, Mapping):
            self._inbox.put_nowait(("event", data))

    async def _loop(self, client: Any, refusal: list[Any]) -> JobRecord:
        while True:
            kind, data = await self._inbox.get()
            if kind == "connect":
                await self._subscribe(client)
            elif kind == "expired":
                self._on_message("session expired; reconnecting with a fresh token")
                await client.disconnect()
                await self._connect(client, refusal)
            elif kind == "disconnect":
                self._on_message("connection lost; reconnecting…")
            elif kind == "event":
                verdict = self.follower.on_event(data)
                if verdict is Verdict.APPLIED:
                    self._changed()
                    self._note(data)
                elif verdict is Verdict.RESYNC:
                    self.resyncs += 1
                    await self._subscribe(client)
            job = self.follower.job
            if job is not None and job.state in END_STATES and not self.follow:
                return job

    async def _subscribe(self, client: Any) -> None:
        try:
            ack = await client.call(
                "job:subscribe", self.follower.subscribe_payload(), timeout=self.ack_timeout_s
            )
        except socketio.exceptions.BadNamespaceError:
            return  # down again; the next connect re-subscribes
        except socketio.exceptions.TimeoutError:
            if client.connected:  # slow but there: ask again (each try waits a full timeout)
                self._inbox.put_nowait(("connect", None))
            return
        if not isinstance(ack, Mapping) or not ack.get("ok"):
            error = ack.get("error", {}) if isinstance(ack, Mapping) else {}
            raise WatchError(f"job:subscribe refused: {error.get('code')}: {error.get('message')}")
        before = self.follower.snapshots
        replayed = self.follower.on_subscribed(ack)
        if self.follower.snapshots != before and before:
            self._on_message("history not recoverable; restarted from the job's snapshot")
        self._changed()
        for event in replayed:
            self._note(event)

    def _changed(self) -> None:
        job = self.follower.job
        if job is not None:
            self._on_change(job)

    def _note(self, event: Mapping[str, Any]) -> None:
        note = event_note(event)
        if note is not None:
            self._on_message(note)


def _refusal_text(refusal: list[Any], exc: Exception) -> str:
    for data in refusal:
        if isinstance(data, Mapping):
            inner = data.get("data") if isinstance(data.get("data"), Mapping) else data
            if isinstance(inner, Mapping) and "code" in inner:
                return f"{inner['code']}: {inner.get('message', '')}"
    return str(exc)


def exit_status(job: JobRecord) -> int:
    """0 when the job completed, 1 when it failed or was cancelled, 3 otherwise."""
    if job.state is JobState.COMPLETED:
        return 0
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        return 1
    return 3


__all__ = [
    "END_STATES",
    "JobStreamFollower",
    "JobWatcher",
    "TerminalView",
    "Verdict",
    "WatchError",
    "apply_event",
    "event_note",
    "exit_status",
    "progress_line",
    "state_line",
]
