"""The commit core every part of the service shares: per-job lock, flush held progress,
apply one change, publish its events (and count the transition), signal workers.

A commit's events are published after the job's lock is released, in seq order
(:mod:`server.service.publishing`), so the job's next write need not wait for them; a caller
cancelled once they are put leaves them to be published.

User commands, worker calls, supervision and reads (the other modules of this package) are
written over :class:`CommitCore`; none of them touches the publisher or the lock directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import attrs

from jobspine_shared.logcontext import bind
from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import JobState
from server import validation
from server.actors import SUPERVISOR_ACTOR, Actor
from server.errors import InvalidProgress, InvalidTransition, LeaseLost, NotFound, Unavailable
from server.keyed_lock import KeyedLock
from server.progress_gate import ProgressGate
from server.recovery import RecoveryOptions, recovery_options
from server.retry import failure_change
from server.service.publishing import ClaimsInFlight, PublishLines
from server.service.settings import RepositorySettings
from server.store.base import JobStore
from server.store.model import AuditWrite, ChangeResult, JobChange, StoredJob
from server.store.progress import progress_event

log = logging.getLogger(__name__)

S = JobState
T = TypeVar("T")


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[JobEvent]) -> None: ...


class WorkerSignals(Protocol):
    """Pushes to worker sockets (the ``/workers`` namespace implements it)."""

    async def jobs_available(self, types: Sequence[str]) -> None:
        """Jobs of ``types`` became claimable: wake the idle workers of those types."""

    async def lease_revoked(self, job_id: str, *, state: str, reason: str) -> None:
        """The job left ``running`` other than by its worker's call: tell the lease holder."""

    async def pause_requested(self, job_id: str) -> None:
        """A user asked to pause the job: tell the lease holder."""


class TransitionObserver(Protocol):
    """Told of each committed state change: ``job`` as committed, ``source`` ``None`` for a
    creation (:class:`server.lifecycle_metrics.LifecycleMetrics`)."""

    def transition(self, job: JobRecord, source: JobState | None, target: JobState) -> None: ...


@attrs.frozen
class Transition:
    job: JobRecord
    source: JobState | None
    target: JobState


def _transition(change: JobChange, result: ChangeResult) -> Transition | None:
    """The state change ``change`` committed, if any; its source from the change's one
    allowed state, or the ``previous_state`` its event names (cancel)."""
    if change.to_state is None or not result.events:
        return None
    if len(change.from_states) == 1:
        return Transition(result.job.record, next(iter(change.from_states)), change.to_state)
    for event in result.events:
        previous = event.data.get("previous_state")
        if isinstance(previous, str) and previous in JobState.__members__.values():
            return Transition(result.job.record, JobState(previous), change.to_state)
    return None


def _may_follow_a_claim(change: JobChange, transition: Transition | None) -> bool:
    """Whether ``change`` is one without a lease that found its job running: a claim of
    this instance may have committed the job running just before it, its ``job:started``
    not put yet (a claim commits before it knows its job). A change from another state
    cannot have: a claim that committed first would have left the job running."""
    if change.lease is not None or S.RUNNING not in change.from_states:
        return False
    return transition is None or transition.source is None or transition.source is S.RUNNING


def about(job: JobRecord) -> None:
    """Every later log line of this request, call or task names the job."""
    bind(job_id=job.id, correlation_id=job.correlation_id)


def states(*allowed: JobState) -> frozenset[JobState]:
    """The states a change may start from."""
    return frozenset(allowed)


class CommitCore:
    def __init__(
        self,
        store: JobStore,
        settings: RepositorySettings | None = None,
        publisher: EventPublisher | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or RepositorySettings()
        self._publisher = publisher
        self._signals: WorkerSignals | None = None
        self._ordering = KeyedLock()
        self._lines: PublishLines[Transition | None] = PublishLines(self._publish)
        self._claims = ClaimsInFlight()
        #: Putting and publishing what cancelled callers left before they took the lock.
        self._left: set[asyncio.Task[None]] = set()
        self.progress_gate = ProgressGate(
            self.settings.progress_events_per_s, self._append_trailing_progress
        )
        self._on_progress_held: Callable[[], None] = lambda: None
        self._transitions: TransitionObserver | None = None

    def set_publisher(self, publisher: EventPublisher | None) -> None:
        self._publisher = publisher

    def set_worker_signals(self, signals: WorkerSignals | None) -> None:
        self._signals = signals

    def set_transition_observer(self, observer: TransitionObserver | None) -> None:
        """``observer`` hears of every committed state change (the lifecycle metrics)."""
        self._transitions = observer

    def set_progress_observer(self, on_held: Callable[[], None]) -> None:
        """``on_held`` is called for each progress update stored without a live event."""
        self._on_progress_held = on_held

    async def close(self) -> None:
        """Append the trailing progress events still pending and publish what cancelled
        callers left; call before the store closes."""
        await self.progress_gate.close()
        while self._left:
            await asyncio.gather(*self._left, return_exceptions=True)
        await self._lines.close()

    # -- the commit path --------------------------------------------------------------------

    async def _in_order(self, job_id: str, section: Callable[[], Awaitable[T]]) -> T:
        """``section`` under the job's lock; the events it put (:meth:`_put`) go out after
        the lock is released, each batch in its turn, before this returns or raises."""
        try:
            async with self._ordering.hold(job_id):
                return await section()
        finally:
            await self._lines.publish_own(job_id)

    def _leave(self, job_id: str, work: Awaitable[None]) -> None:
        """Run ``work`` (what a cancelled caller left of its commit: putting its events, in
        a section) in a task of its own; :meth:`close` waits for it."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("publishing what a cancelled call left of job %s failed", job_id)

        task = asyncio.get_running_loop().create_task(run(), name=f"left-{job_id}")
        self._left.add(task)
        task.add_done_callback(self._left.discard)

    def _put(
        self,
        job_id: str,
        events: Sequence[JobEvent],
        transition: Transition | None = None,
        *,
        after_claims: bool = False,
    ) -> None:
        """Queue a commit's events (call under the job's lock, in a section); the state
        change is counted when they are published. ``after_claims``: a change without a
        lease that found the job running, which could have come between a claim's commit
        and its events."""
        if not events:
            self._count(transition)
            return
        ready = self._claims.barrier(job_id) if after_claims else None
        self._lines.put(job_id, events, transition, ready=ready)

    def _count(self, transition: Transition | None) -> None:
        if transition is not None and self._transitions is not None:
            try:
                self._transitions.transition(transition.job, transition.source, transition.target)
            except Exception:
                log.exception("counting a transition failed")

    async def _publish(self, events: Sequence[JobEvent], transition: Transition | None) -> None:
        """The one publish path: count the state change committed, then publish its events
        (in the job's turn, :class:`PublishLines`)."""
        self._count(transition)
        if not events or self._publisher is None:
            return
        try:
            await self._publisher.publish(events)
        except Exception:
            # The events are stored; clients fill the gap by replay.
            log.exception("publishing %d event(s) failed", len(events))

    async def _change(self, job_id: str, change: JobChange) -> StoredJob:
        async def section() -> ChangeResult:
            result = await self._apply_after_held(job_id, change)
            about(result.job.record)
            transition = _transition(change, result)
            after_claims = _may_follow_a_claim(change, transition)
            self._put(job_id, result.events, transition, after_claims=after_claims)
            return result

        return (await self._in_order(job_id, section)).job

    async def _apply_after_held(self, job_id: str, change: JobChange) -> ChangeResult:
        """Apply ``change`` after the trailing event of the job's held progress report, if
        any (the caller holds the job's lock). A change fenced by the lease that reported it
        (checkpoint, complete, fail, paused, recover) carries that event as its first one:
        one write instead of a progress write and then the change. The row holds exactly the
        held report while it is held (:meth:`_flush_held_progress`), and the change's own
        fence (running under that lease) is the trailing event's. When the change is
        refused, the trailing event is written on its own, as before any other change, and
        the change is applied again alone, so it is refused (or applies) exactly as it would
        have; should the store be unavailable, the report stays held."""
        held = self.progress_gate.held_write(job_id)
        if held is None or held.lease != change.lease:
            await self._flush_held_progress(job_id)
            return await self.store.apply(job_id, change)
        carried = attrs.evolve(change, events=(progress_event(held), *change.events))
        try:
            result = await self.store.apply(job_id, carried)
        except (LeaseLost, InvalidTransition, InvalidProgress, NotFound):
            await self._flush_held_progress(job_id)
            return await self.store.apply(job_id, change)
        self.progress_gate.event_appended(job_id)  # (which clears the held report)
        return result

    async def _append_trailing_progress(self, job_id: str) -> None:
        """The gate's callback: the trailing event of held reports, in its turn."""
        await self._in_order(job_id, lambda: self._flush_held_progress(job_id))

    async def _flush_held_progress(self, job_id: str) -> None:
        """Append the pending trailing progress event of ``job_id``, if any, before anything
        else of the job (the caller holds the job's lock). When the job no longer runs under
        the reporting lease the event is dropped: the stored row has the value, and the
        stream has moved on (another instance changed the job).

        The event is the held report written again with its event: the row holds exactly
        that report (a later one would have replaced it, or cleared it with an event of its
        own), so this is one progress write, grouped with other reports on Postgres, instead
        of a change of its own (:func:`server.store.progress.trailing_progress_change`)."""
        held = self.progress_gate.take_held(job_id)
        if held is None:
            return
        try:
            result = await self.store.update_progress(job_id, attrs.evolve(held, with_event=True))
        except (LeaseLost, InvalidTransition, InvalidProgress, NotFound):
            return
        except Unavailable:
            self.progress_gate.update_held(job_id, held)  # try again when the window closes
            raise
        self.progress_gate.event_appended(job_id)
        self._put(job_id, result.events)

    # -- worker pushes ----------------------------------------------------------------------

    async def _signal(self, push: Callable[[WorkerSignals], Awaitable[None]]) -> None:
        """A push to workers; they also learn it from their next call, so a failure is
        logged, not raised."""
        if self._signals is None:
            return
        try:
            await push(self._signals)
        except Exception:
            log.exception("a worker signal failed")

    async def _became_claimable(self, record: JobRecord) -> None:
        """Wake idle workers for a job that is claimable now (a later ``run_at`` is the
        supervisor's: ``announce_due_jobs``)."""
        if record.state is S.CREATED and (
            record.run_at is None or record.run_at <= record.updated_at
        ):
            await self._signal(lambda signals: signals.jobs_available([record.type]))

    async def _revoked(self, before: StoredJob, after: JobRecord, reason: str) -> None:
        """Tell the holder of ``before``'s lease that it is gone."""
        if before.record.state is S.RUNNING and after.state is not S.RUNNING:
            job_id, state = after.id, str(after.state)
            await self._signal(
                lambda signals: signals.lease_revoked(job_id, state=state, reason=reason)
            )

    # -- shared by several callers ----------------------------------------------------------

    async def _visible(self, actor: Actor, job_id: str) -> StoredJob:
        """The job, when it exists and ``actor`` may see it; ``not_found`` otherwise (a call's
        id is checked by its parser; one that is not a job id names no job here either)."""
        job = await self.store.get(job_id) if validation.is_job_id(job_id) else None
        if job is None or not actor.may_see(job.record.user_id):
            raise NotFound()
        about(job.record)
        return job

    def _options(self, job: StoredJob) -> RecoveryOptions:
        return recovery_options(job, max_recovery_attempts=self.settings.max_recovery_attempts)

    @staticmethod
    def _audit(actor: Actor, action: str, **details: Any) -> AuditWrite:
        # Every entry names the actor's role, so a user whose sub is "supervisor" never looks
        # like the supervisor ("system").
        details["role"] = "system" if actor is SUPERVISOR_ACTOR else str(actor.role)
        return AuditWrite(action=action, actor=actor.id, details=details)

    async def _fail(
        self,
        job_id: str,
        error: dict[str, Any],
        *,
        lease: str,
        stale_after_s: float | None = None,
        actor: Actor | None = None,
        reason: str | None = None,
    ) -> JobRecord:
        """Fail the attempt under ``lease``: a retry when the error is retryable and attempts
        are left (:mod:`server.retry`), else the final failure. ``reason``: the server's own
        failure (not the worker's call), whose lease holder is told it is revoked."""
        current = await self.store.get(job_id)
        if current is None:
            raise NotFound()
        audit = self._audit(actor, "fail", code=error["code"]) if actor else None
        change = failure_change(
            current.record, error, lease=lease, stale_after_s=stale_after_s, audit=audit
        )
        after = (await self._change(job_id, change)).record
        if reason is not None:
            await self._revoked(current, after, reason)
        await self._became_claimable(after)
        return after


__all__ = [
    "CommitCore",
    "EventPublisher",
    "Transition",
    "TransitionObserver",
    "WorkerSignals",
    "about",
    "states",
]
