"""JobRepository: the single entry point for every job operation.

Transports (Socket.IO handlers, REST views) and the supervisor call these methods; the
methods validate values, authorise the actor, describe the change and let the store apply it
atomically, then hand the committed events to the publisher in seq order per job.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import attrs

from jobspine_shared import checks
from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.logcontext import bind, own_context
from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import event_to_wire, format_time, job_to_wire, parse_time
from server import validation
from server.actors import SUPERVISOR, Actor, Role
from server.commands import CreateJob, parse_create
from server.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    LeaseLost,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from server.keyed_lock import KeyedLock
from server.limits.active_jobs import check_active_jobs
from server.limits.reply_budget import TRUNCATED_SLOT, ReplyBudget
from server.progress_gate import ProgressGate
from server.recovery import recovery_options
from server.retry import failure_change, timeout_error
from server.store.base import DEFAULT_IDEMPOTENCY_TTL_S, JobStore, NewJob
from server.store.model import (
    CLEAR_CHECKPOINT,
    NOW,
    AuditEntry,
    AuditWrite,
    ChangeResult,
    Checkpoint,
    CheckpointWrite,
    EventSpec,
    JobChange,
    JobFilter,
    PageCursor,
    StoredJob,
)
from server.store.progress import ProgressWrite, trailing_progress_change

log = logging.getLogger(__name__)

S = JobState
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_SYNC_JOBS = 500
MAX_CLAIM_TYPES = 64


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


def _about(job: JobRecord) -> None:
    """Every later log line of this request, call or task names the job."""
    bind(job_id=job.id, correlation_id=job.correlation_id)


@attrs.frozen(kw_only=True)
class RepositorySettings:
    max_checkpoint_bytes: int = 1_048_576
    heartbeat_timeout_s: float = 30.0
    max_recovery_attempts: int = 3
    #: Live ``job:progress`` events per job and second (:mod:`server.progress_gate`); 0 for
    #: no limit. The default of the server's configuration (``PROGRESS_EVENTS_PER_S``).
    progress_events_per_s: float = 10.0
    #: How long an idempotency key names its job (``IDEMPOTENCY_TTL_S``).
    idempotency_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S
    #: Running jobs per user at most (``MAX_RUNNING_PER_USER``); 0 for no cap.
    max_running_per_user: int = 0
    #: ``MAX_INPUT_BYTES``: compact UTF-8 JSON of a job's input and of a result.
    max_input_bytes: int = 262_144
    #: ``MAX_ACTIVE_JOBS_PER_USER``: created/running/paused jobs per user; 0 for no cap.
    max_active_jobs_per_user: int = 0


@attrs.frozen(kw_only=True)
class RecoveryCheck:
    """The answer to an admin's recovery check of one job."""

    recovered: bool
    job: JobRecord


@attrs.frozen(kw_only=True)
class Replay:
    """Answer to "what did I miss after ``after_seq``": the events, or the snapshot to restart."""

    job: JobRecord
    events: tuple[JobEvent, ...]
    recovered: bool


@attrs.frozen(kw_only=True)
class Claim:
    job: JobRecord
    lease: str
    checkpoint: dict[str, Any] | None


@attrs.frozen(kw_only=True)
class Created:
    """A create's answer: the job, and whether it existed already (idempotent replay)."""

    job: JobRecord
    existing: bool = False


@attrs.frozen(kw_only=True)
class JobPage:
    items: tuple[JobRecord, ...]
    next_cursor: str | None


def encode_cursor(cursor: PageCursor) -> str:
    raw = f"{format_time(cursor.created_at)}|{cursor.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> PageCursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, job_id = raw.split("|")
        return PageCursor(created_at=parse_time(created), id=validation.job_id(job_id))
    except (ValueError, binascii.Error, UnicodeDecodeError, ValidationFailed):
        raise validation.invalid("cursor", "is not a cursor this server issued") from None


def _v2_filters(*, tag: object, parent_id: object, priority: object) -> JobFilter:
    """The list filters of contract v2, checked by the shared rules."""
    try:
        return JobFilter(
            tag=None if tag is None else checks.tag(tag),
            parent_id=None if parent_id is None else validation.job_id(parent_id, "parent_id"),
            priority=None if priority is None else checks.priority(priority),
        )
    except checks.ValueCheckError as exc:
        raise validation.invalid(exc.field, exc.message) from None


def _user_states(*states: JobState) -> frozenset[JobState]:
    return frozenset(states)


class JobRepository:
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
        """Append the trailing progress events still pending; call before the store closes."""
        await self.progress_gate.close()

    # -- plumbing ---------------------------------------------------------------------------

    async def _publish(
        self, events: Sequence[JobEvent], transition: Transition | None = None
    ) -> None:
        """The one commit path: count the state change committed, then publish its events."""
        if transition is not None and self._transitions is not None:
            try:
                self._transitions.transition(transition.job, transition.source, transition.target)
            except Exception:
                log.exception("counting a transition failed")
        if not events or self._publisher is None:
            return
        try:
            await self._publisher.publish(events)
        except Exception:
            # The events are stored; clients fill the gap by replay.
            log.exception("publishing %d event(s) failed", len(events))

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
        supervisor's: :meth:`announce_due_jobs`)."""
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

    async def _change(self, job_id: str, change: JobChange) -> StoredJob:
        async with self._ordering.hold(job_id):
            await self._flush_held_progress(job_id)
            result = await self.store.apply(job_id, change)
            _about(result.job.record)
            await self._publish(result.events, _transition(change, result))
        return result.job

    async def _visible(self, actor: Actor, job_id: object) -> StoredJob:
        """The job, when it exists and ``actor`` may see it; ``not_found`` otherwise."""
        checked = validation.job_id(job_id)
        job = await self.store.get(checked)
        if job is None or not actor.may_see(job.record.user_id):
            raise NotFound()
        _about(job.record)
        return job

    def _options(self, job: StoredJob) -> dict[str, Any]:
        return recovery_options(job, max_recovery_attempts=self.settings.max_recovery_attempts)

    @staticmethod
    def _audit(actor: Actor, action: str, **details: Any) -> AuditWrite:
        # Every entry names the actor's role, so a user whose sub is "supervisor" never looks
        # like the supervisor ("system").
        details["role"] = "system" if actor is SUPERVISOR else str(actor.role)
        return AuditWrite(action=action, actor=actor.id, details=details)

    # -- users: reading ---------------------------------------------------------------------

    async def get_job(self, actor: Actor, job_id: object) -> JobRecord:
        return (await self._visible(actor, job_id)).record

    async def list_jobs(
        self,
        actor: Actor,
        *,
        state: object = None,
        type: object = None,
        user_id: object = None,
        limit: object = None,
        cursor: object = None,
        tag: object = None,
        parent_id: object = None,
        priority: object = None,
    ) -> JobPage:
        v2 = _v2_filters(tag=tag, parent_id=parent_id, priority=priority)
        wanted_state = None
        if state is not None:
            if not isinstance(state, str) or state not in set(JobState):
                raise validation.invalid("state", "is not a job state")
            wanted_state = JobState(state)
        wanted_type = None if type is None else validation.job_type(type)
        if user_id is not None and not isinstance(user_id, str):
            raise validation.invalid("user_id", "must be a string")
        if user_id is not None:
            validation.storable_text(user_id, "user_id")
        owner = (user_id or None) if actor.is_admin else actor.id
        if limit is None:
            limit = DEFAULT_PAGE_SIZE
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise validation.invalid("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        after = None
        if cursor is not None:
            if not isinstance(cursor, str):
                raise validation.invalid("cursor", "must be a string")
            after = decode_cursor(cursor)
        page = await self.store.list_jobs(
            attrs.evolve(v2, user_id=owner, state=wanted_state, type=wanted_type),
            limit=limit,
            after=after,
        )
        next_cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
        return JobPage(items=page.items, next_cursor=next_cursor)

    async def replay(
        self, actor: Actor, job_id: object, *, after_seq: object = None, epoch: object = None
    ) -> Replay:
        """Events after ``after_seq`` when the backlog still covers them, else the snapshot."""
        cursor = validation.after_seq(after_seq)
        if epoch is not None and not isinstance(epoch, str):
            raise validation.invalid("epoch", "must be a string")
        checked = validation.job_id(job_id)
        if not actor.is_admin:
            await self._visible(actor, checked)  # authorised before the backlog is read
        read = await self.store.read_stream(checked, cursor if cursor is not None else 2**62)
        if read is None or not actor.may_see(read.job.record.user_id):
            raise NotFound()
        job = read.job.record
        if cursor is None or (epoch is not None and epoch != job.epoch) or cursor > job.seq:
            return Replay(job=job, events=(), recovered=False)
        missed = job.seq - cursor
        contiguous = len(read.events) >= missed and all(
            event.seq == cursor + 1 + i for i, event in enumerate(read.events[:missed])
        )
        if missed > self.store.backlog_size or not contiguous:
            return Replay(job=job, events=(), recovered=False)
        return Replay(job=job, events=read.events[:missed], recovered=True)

    #: The issue's name for :meth:`replay`: the events of a job after seq N, or the snapshot.
    events_since = replay

    async def subscribe(
        self,
        actor: Actor,
        job_id: object,
        *,
        join: Callable[[str], Awaitable[None]],
        after_seq: object = None,
        epoch: object = None,
    ) -> Replay:
        """A replay that starts live delivery: ``join(job_id)`` runs once the arguments are
        valid and ``actor`` may see the job, and before the backlog is read, so no event
        falls between the replay and the live stream and no one else's event leaks."""
        validation.after_seq(after_seq)
        if epoch is not None and not isinstance(epoch, str):
            raise validation.invalid("epoch", "must be a string")
        job = await self._visible(actor, job_id)
        await join(job.record.id)
        return await self.replay(actor, job.record.id, after_seq=after_seq, epoch=epoch)

    async def sync(
        self, actor: Actor, cursors: object, epochs: object = None
    ) -> dict[str, dict[str, Any]]:
        """Replay many jobs in one call; each slot is a replay or a ``not_found`` error."""
        if not isinstance(cursors, dict):
            raise validation.invalid("cursors", "must be an object of job_id: after_seq")
        if len(cursors) > MAX_SYNC_JOBS:
            raise validation.invalid("cursors", f"at most {MAX_SYNC_JOBS} jobs per call")
        for key, value in cursors.items():
            validation.after_seq(value, f"cursors.{key}")
        if epochs is not None and (
            not isinstance(epochs, dict) or not all(isinstance(v, str) for v in epochs.values())
        ):
            raise validation.invalid("epochs", "must be an object of job_id: epoch")
        epochs = epochs or {}
        results: dict[str, dict[str, Any]] = {}
        budget = ReplyBudget()  # bounded replies; the rest is marked for another call
        for key, value in cursors.items():
            if budget.spent:
                results[key] = dict(TRUNCATED_SLOT)
                continue
            try:
                replay = await self.replay(actor, key, after_seq=value, epoch=epochs.get(key))
            except (NotFound, ValidationFailed):
                results[key] = {"error": NotFound().to_wire()}
            else:
                slot = replay_to_wire(replay)
                results[key] = slot if budget.fits(slot) else dict(TRUNCATED_SLOT)
        return results

    async def recovery_options(self, actor: Actor, job_id: object) -> dict[str, Any]:
        return self._options(await self._visible(actor, job_id))

    async def get_checkpoint(self, actor: Actor, job_id: object) -> Checkpoint:
        job = await self._visible(actor, job_id)
        checkpoint = await self.store.get_checkpoint(job.record.id)
        if checkpoint is None:
            raise NotFound("this job has no checkpoint")
        return checkpoint

    async def audit_trail(self, actor: Actor, job_id: object) -> list[AuditEntry]:
        job = await self._visible(actor, job_id)
        return await self.store.list_audit(job.record.id)

    async def get_stats(self, actor: Actor) -> dict[str, Any]:
        counts = await self.store.count_by_state(None if actor.is_admin else actor.id)
        by_state = {str(state): counts.get(state, 0) for state in JobState}
        return {"by_state": by_state, "total": sum(by_state.values())}

    async def get_resumable_jobs(self, actor: Actor) -> tuple[JobRecord, ...]:
        page = await self.list_jobs(actor, state=S.PAUSED, limit=MAX_PAGE_SIZE)
        return page.items

    # -- users: changing --------------------------------------------------------------------

    async def create_job(self, actor: Actor, *, type: object, input: object = None) -> JobRecord:
        """A create with the v1 fields only (tests, scripts); see :meth:`create`."""
        return (await self.create(actor, parse_create({"type": type, "input": input}))).job

    async def create(
        self, actor: Actor, command: CreateJob, *, request_id: str | None = None
    ) -> Created:
        """Create a job, or answer the one this user's idempotency key already names.

        ``request_id`` becomes the ``correlation_id`` when the command has none.
        """
        if actor.role is Role.WORKER:
            raise Forbidden("workers cannot create jobs")
        validation.bounded_size(command.input, "input", self.settings.max_input_bytes)
        await check_active_jobs(self.store, actor, self.settings.max_active_jobs_per_user)
        if command.parent_id is not None:
            parent = await self._visible(actor, command.parent_id)
            if parent.record.user_id != actor.id:
                raise validation.invalid("parent_id", "must be a job of the same user")
        job = NewJob(
            id=str(uuid.uuid4()),
            user_id=actor.id,
            type=command.type,
            input=command.input,
            epoch=uuid.uuid4().hex,
            priority=command.priority,
            run_at=command.run_at,
            tags=command.tags,
            parent_id=command.parent_id,
            timeout_s=command.timeout_s,
            retry=command.retry,
            idempotency_key=command.idempotency_key,
            correlation_id=command.correlation_id or request_id,
        )
        event = EventSpec(
            type=EventType.CREATED, data=lambda created: {"job": job_to_wire(created.record)}
        )
        async with self._ordering.hold(job.id):
            result = await self.store.create(
                job, event=event, idempotency_ttl_s=self.settings.idempotency_ttl_s
            )
            record = result.job.record
            _about(record)
            created = None if result.existing else Transition(record, None, record.state)
            await self._publish(result.events, created)
        if result.existing and not command.same_request(record.type, record.input):
            raise Conflict(
                "this idempotency key was used for a job of another type or input",
                details={"job_id": record.id, "idempotency_key": command.idempotency_key},
            )
        if not result.existing:
            await self._became_claimable(record)
        return Created(job=record, existing=result.existing)

    async def pause(self, actor: Actor, job_id: object) -> JobRecord:
        """A user's pause: hold a created job, or ask the worker of a running job to pause."""
        job = await self._visible(actor, job_id)
        if job.record.state is S.RUNNING:
            if job.record.pause_requested:
                return job.record
            change = JobChange(
                action="pause",
                from_states=_user_states(S.RUNNING),
                fields={"pause_requested": True},
                events=(EventSpec(type=EventType.PAUSE_REQUESTED),),
                audit=self._audit(actor, "pause_requested"),
            )
            requested = (await self._change(job.record.id, change)).record
            if requested.state is S.RUNNING:
                job_id = requested.id
                await self._signal(lambda signals: signals.pause_requested(job_id))
            return requested
        else:
            change = JobChange(
                action="pause",
                from_states=_user_states(S.CREATED),
                to_state=S.PAUSED,
                fields={"paused_at": NOW},
                events=(EventSpec(type=EventType.PAUSED, data={"reason": PauseReason.USER.value}),),
                audit=self._audit(actor, "pause"),
            )
        return (await self._change(job.record.id, change)).record

    #: A user's pause of a running job is a request the worker honours with :meth:`paused`;
    #: :meth:`pause` decides by state, so both names lead to the one rule.
    request_pause = pause

    async def resume(self, actor: Actor, job_id: object) -> JobRecord:
        """paused -> created: claimable again, checkpoint kept."""
        job = await self._visible(actor, job_id)
        change = JobChange(
            action="resume",
            from_states=_user_states(S.PAUSED),
            to_state=S.CREATED,
            fields={"paused_at": None},
            events=(
                EventSpec(
                    type=EventType.RESUMED,
                    data=lambda changed: {"has_checkpoint": changed.checkpoint is not None},
                ),
            ),
            audit=self._audit(actor, "resume"),
        )
        resumed = (await self._change(job.record.id, change)).record
        await self._became_claimable(resumed)
        return resumed

    async def cancel(self, actor: Actor, job_id: object) -> JobRecord:
        job = await self._visible(actor, job_id)
        previous = str(job.record.state)
        change = JobChange(
            action="cancel",
            from_states=_user_states(S.CREATED, S.RUNNING, S.PAUSED),
            to_state=S.CANCELLED,
            fields={"cancelled_at": NOW},
            events=(EventSpec(type=EventType.CANCELLED, data={"previous_state": previous}),),
            audit=self._audit(actor, "cancel", previous_state=previous),
        )
        cancelled = (await self._change(job.record.id, change)).record
        await self._revoked(job, cancelled, "cancelled")
        return cancelled

    async def delete_job(self, actor: Actor, job_id: object) -> StoredJob:
        """Delete a job in a final state with everything it has (owner or admin); it is
        ``not_found`` everywhere after. Other states: ``invalid_transition``."""
        job = await self._visible(actor, job_id)
        async with self._ordering.hold(job.record.id):
            return await self.store.delete(job.record.id)

    async def restart(self, actor: Actor, job_id: object, *, input: object = None) -> JobRecord:
        """failed/cancelled -> created: error, result and checkpoint cleared; optional new input."""
        job = await self._visible(actor, job_id)
        fields: dict[str, Any] = {
            "error": None,
            "result": None,
            "progress": 0.0,
            "step": None,
            "recovery_attempts": 0,
            "started_at": None,
            "paused_at": None,
            "completed_at": None,
            "failed_at": None,
            "cancelled_at": None,
            "last_heartbeat_at": None,
            "retries": 0,
            "run_at": None,
        }
        if input is not None:
            fields["input"] = validation.json_object(input, "input")
            validation.bounded_size(fields["input"], "input", self.settings.max_input_bytes)
        change = JobChange(
            action="restart",
            from_states=_user_states(S.FAILED, S.CANCELLED),
            to_state=S.CREATED,
            fields=fields,
            checkpoint=CLEAR_CHECKPOINT,
            events=(
                EventSpec(type=EventType.RESTARTED, data={"previous_state": str(job.record.state)}),
            ),
            audit=self._audit(actor, "restart", new_input=input is not None),
        )
        restarted = (await self._change(job.record.id, change)).record
        await self._became_claimable(restarted)
        return restarted

    # -- workers ----------------------------------------------------------------------------

    async def claim(
        self, actor: Actor, *, types: object = None, worker_id: object = None
    ) -> Claim | None:
        if types is None:
            types = []
        if not isinstance(types, list) or len(types) > MAX_CLAIM_TYPES:
            raise validation.invalid("types", f"must be a list of at most {MAX_CLAIM_TYPES} types")
        checked_types = [validation.job_type(t, "types") for t in types]
        if worker_id is None:
            worker_id = actor.id
        if not isinstance(worker_id, str) or not 1 <= len(worker_id) <= 128:
            raise validation.invalid("worker_id", "must be a string of 1 to 128 characters")
        validation.storable_text(worker_id, "worker_id")
        lease = secrets.token_urlsafe(18)
        claimed = await self.store.claim(
            types=checked_types,
            worker_id=worker_id,
            lease=lease,
            max_running_per_user=self.settings.max_running_per_user,
        )
        if claimed is None:
            return None
        _about(claimed.job)
        async with self._ordering.hold(claimed.job.id):
            await self._publish(claimed.events, Transition(claimed.job, S.CREATED, S.RUNNING))
        return Claim(job=claimed.job, lease=claimed.lease, checkpoint=claimed.checkpoint)

    @staticmethod
    def _lease(value: object) -> str:
        if (
            not isinstance(value, str)
            or not 1 <= len(value) <= 128
            or not validation.is_storable_text(value)
        ):
            raise validation.invalid("lease", "must be the lease string the claim returned")
        return value

    async def heartbeat(self, job_id: object, lease: object) -> bool:
        """Prove the worker is alive; returns whether a pause was requested."""
        return await self.store.heartbeat(validation.job_id(job_id), self._lease(lease))

    async def update_progress(
        self, job_id: object, lease: object, progress: object, step: object = None
    ) -> JobRecord:
        """Store the report; append its ``job:progress`` event now, or hold it back when the
        job's event rate is reached (:mod:`server.progress_gate`: a trailing event carries
        the latest value once the window closes, and seq never skips)."""
        value = validation.progress(progress)
        text = validation.step(step)
        checked_lease = self._lease(lease)
        checked_id = validation.job_id(job_id)
        gate = self.progress_gate
        async with self._ordering.hold(checked_id):
            live = gate.admits(checked_id)
            write = ProgressWrite(lease=checked_lease, progress=value, step=text, with_event=live)
            result = await self.store.update_progress(checked_id, write)
            if live:
                gate.event_appended(checked_id)
                await self._publish(result.events)
            else:
                gate.update_held(checked_id, checked_lease)
                self._on_progress_held()
        return result.job.record

    async def _append_trailing_progress(self, job_id: str) -> None:
        """The gate's callback: the trailing event of held reports, in its turn."""
        async with self._ordering.hold(job_id):
            await self._flush_held_progress(job_id)

    async def _flush_held_progress(self, job_id: str) -> None:
        """Append the pending trailing progress event of ``job_id``, if any, before anything
        else of the job (the caller holds the job's lock). When the job no longer runs under
        the reporting lease the event is dropped: the stored row has the value, and the
        stream has moved on (another instance changed the job)."""
        lease = self.progress_gate.take_held(job_id)
        if lease is None:
            return
        try:
            result = await self.store.apply(job_id, trailing_progress_change(lease))
        except (LeaseLost, InvalidTransition, NotFound):
            return
        except Unavailable:
            self.progress_gate.update_held(job_id, lease)  # try again when the window closes
            raise
        self.progress_gate.event_appended(job_id)
        await self._publish(result.events)

    async def _checkpoint_write(
        self, job_id: str, data: object, progress: object, field: str
    ) -> tuple[CheckpointWrite, float | None]:
        """Validate the checkpoint (before looking the job up: a malformed call is a
        ``validation_error`` whether or not the job exists), then describe the write."""
        checked, size = validation.checkpoint_data(data, self.settings.max_checkpoint_bytes, field)
        value = None if progress is None else validation.progress(progress)
        current = await self.store.get(job_id)
        if current is None:
            raise NotFound()
        write = CheckpointWrite(
            data=checked,
            size_bytes=size,
            progress=current.record.progress if value is None else value,
            keys=tuple(str(k) for k in checked),
        )
        return write, value

    async def checkpoint(
        self, job_id: object, lease: object, data: object, progress: object = None
    ) -> datetime:
        checked_id, checked_lease = validation.job_id(job_id), self._lease(lease)
        write, value = await self._checkpoint_write(checked_id, data, progress, "data")
        event_data: dict[str, Any] = {"size_bytes": write.size_bytes}
        fields: dict[str, Any] = {"last_heartbeat_at": NOW}
        if value is not None:
            event_data["progress"] = value
            fields["progress"] = value
        change = JobChange(
            action="checkpoint",
            from_states=_user_states(S.RUNNING),
            lease=checked_lease,
            progress_at_most=value,
            fields=fields,
            checkpoint=write,
            events=(EventSpec(type=EventType.CHECKPOINT, data=event_data),),
        )
        job = await self._change(checked_id, change)
        assert job.record.checkpoint_at is not None
        return job.record.checkpoint_at

    async def paused(self, job_id: object, lease: object, checkpoint: object = None) -> JobRecord:
        """The worker honours a pause request, optionally saving a checkpoint first."""
        checked_id, checked_lease = validation.job_id(job_id), self._lease(lease)
        events = [EventSpec(type=EventType.PAUSED, data={"reason": PauseReason.USER.value})]
        write = None
        if checkpoint is not None:
            write, _ = await self._checkpoint_write(checked_id, checkpoint, None, "checkpoint")
            events.insert(
                0, EventSpec(type=EventType.CHECKPOINT, data={"size_bytes": write.size_bytes})
            )
        change = JobChange(
            action="pause",
            from_states=_user_states(S.RUNNING),
            to_state=S.PAUSED,
            lease=checked_lease,
            require_pause_requested=True,
            fields={"paused_at": NOW},
            checkpoint=write,
            events=tuple(events),
        )
        return (await self._change(checked_id, change)).record

    async def complete(self, job_id: object, lease: object, result: object = None) -> JobRecord:
        validation.bounded_size(result, "result", self.settings.max_input_bytes)
        change = JobChange(
            action="complete",
            from_states=_user_states(S.RUNNING),
            to_state=S.COMPLETED,
            lease=self._lease(lease),
            fields={"result": result, "progress": 100.0, "completed_at": NOW, "error": None},
            events=(EventSpec(type=EventType.COMPLETED, data={"result": result}),),
        )
        return (await self._change(validation.job_id(job_id), change)).record

    async def fail(self, job_id: object, lease: object, error: object) -> JobRecord:
        if not isinstance(error, dict):
            raise validation.invalid("error", "must be an object {message, code?, retryable?}")
        retryable = error.get("retryable", False)
        if not isinstance(retryable, bool):
            raise validation.invalid("error.retryable", "must be a boolean")
        wire_error = {
            "code": validation.error_code(error.get("code")) or "job_failed",
            "message": validation.error_message(error.get("message")),
            "retryable": retryable,
        }
        return await self._fail(validation.job_id(job_id), wire_error, lease=self._lease(lease))

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

    # -- supervisor -------------------------------------------------------------------------

    async def find_stale_jobs(self, *, limit: int = 1000) -> list[StoredJob]:
        return await self.store.find_stale(self.settings.heartbeat_timeout_s, limit=limit)

    @own_context
    async def recover_stale_job(self, job: StoredJob) -> JobRecord | None:
        """Pause (checkpoint and attempts left) or fail a stale job, once.

        The change is conditional on the job still running under the same lease and still
        being stale, so a heartbeat that lands first wins and concurrent supervisors recover
        a job once. Returns None when there was nothing (any more) to recover.
        """
        record, lease = job.record, job.lease
        if record.state is not S.RUNNING or lease is None:
            return None
        timeout = self.settings.heartbeat_timeout_s
        try:
            if job.checkpoint is not None and (
                record.recovery_attempts < self.settings.max_recovery_attempts
            ):
                change = JobChange(
                    action="recover",
                    from_states=_user_states(S.RUNNING),
                    to_state=S.PAUSED,
                    lease=lease,
                    stale_after_s=timeout,
                    fields={"paused_at": NOW},
                    increments={"recovery_attempts": 1},
                    events=(
                        EventSpec(
                            type=EventType.PAUSED, data={"reason": PauseReason.STALLED.value}
                        ),
                        EventSpec(type=EventType.RECOVERY, data=self._options),
                    ),
                    audit=self._audit(SUPERVISOR, "recover", outcome="paused"),
                )
                paused = (await self._change(record.id, change)).record
                await self._revoked(job, paused, "stalled")
                return paused
            code = "worker_lost" if job.checkpoint is None else "max_recovery_attempts"
            message = (
                "the worker stopped sending heartbeats and the job has no checkpoint"
                if job.checkpoint is None
                else "the job stalled again after its last allowed recovery"
            )
            error = {"code": code, "message": message, "retryable": True}
            return await self._fail(
                record.id,
                error,
                lease=lease,
                stale_after_s=timeout,
                actor=SUPERVISOR,
                reason="stalled",
            )
        except (LeaseLost, InvalidTransition, NotFound):
            return None

    async def find_timed_out_jobs(self, *, limit: int = 1000) -> list[StoredJob]:
        return await self.store.find_timed_out(limit=limit)

    @own_context
    async def time_out_job(self, job: StoredJob) -> JobRecord | None:
        """Fail (or retry) an attempt past its ``timeout_s`` with ``{code: timeout,
        retryable: true}``, once: fenced by the lease it was found under, whose claim set
        the ``started_at`` the timeout counts from. None when it has moved on."""
        if job.record.state is not S.RUNNING or job.lease is None:
            return None
        try:
            return await self._fail(
                job.record.id,
                timeout_error(job.record),
                lease=job.lease,
                actor=SUPERVISOR,
                reason="timeout",
            )
        except (LeaseLost, InvalidTransition, NotFound):
            return None

    async def announce_due_jobs(self, *, within_s: float) -> list[str]:
        """Wake idle workers for delayed jobs whose ``run_at`` passed in the last
        ``within_s`` seconds (the supervisor's tick); returns their types."""
        types = await self.store.due_types(within_s)
        if types:
            await self._signal(lambda signals: signals.jobs_available(types))
        return types

    async def sweep_finished(self, *, older_than_s: float, limit: int) -> list[StoredJob]:
        """Retention: delete one batch of jobs final for longer than ``older_than_s``."""
        return await self.store.delete_finished(older_than_s, limit=limit)

    async def check_job(self, actor: Actor, job_id: object) -> RecoveryCheck:
        """An admin's recovery check of one job: recover it now when it is stale.

        ``recovered`` says whether this check paused or failed the job; the staleness
        condition is checked by the store in the same change, as for the supervisor.
        """
        if not actor.is_admin:
            raise Forbidden("only admins can trigger a recovery check")
        job = await self._visible(actor, job_id)
        recovered = await self.recover_stale_job(job)
        if recovered is None:
            return RecoveryCheck(recovered=False, job=job.record)
        return RecoveryCheck(recovered=True, job=recovered)


def replay_to_wire(replay: Replay) -> dict[str, Any]:
    return {
        "recovered": replay.recovered,
        "events": [event_to_wire(e) for e in replay.events],
        "job": job_to_wire(replay.job),
    }


__all__ = [
    "Claim",
    "Created",
    "EventPublisher",
    "JobPage",
    "JobRepository",
    "RecoveryCheck",
    "Replay",
    "RepositorySettings",
    "replay_to_wire",
]
