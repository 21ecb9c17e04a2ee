"""Lease fencing, written once: every fenced write refuses exactly what ``refusal`` says.

Each write path a worker's call takes (heartbeat, progress with and without its event, the
trailing progress event, a checkpoint, a change applied on its own) is run against jobs in every
situation a fence tells apart, on the memory store and on Postgres with and without
batching. The expected answer is :func:`server.store.rules.refusal` of the path's own change
description (:func:`~server.store.heartbeat.heartbeat_fence`,
:func:`~server.store.progress.progress_change`, ...) on the job as it is: the same error
class, message and details, or success when it names nothing. On Postgres the calls of one
path run concurrently, so the batched statements judge refused and accepted rows together.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import attrs
import pytest

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.errors import JobspineError
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from server.store.heartbeat import heartbeat_fence
from server.store.memory import MemoryJobStore
from server.store.model import NOW, CheckpointWrite, EventSpec, JobChange
from server.store.progress import ProgressWrite, progress_change, trailing_progress_change
from server.store.rules import refusal
from tests.support.jobs import drive
from tests.support.server import TEST_BACKLOG

S = JobState
#: The progress every running case stands at; reports go to REPORTED (or below it).
STORED_PROGRESS = 50.0
REPORTED = 60.0


@attrs.frozen
class Case:
    name: str
    job_id: str
    lease: str
    progress: float = REPORTED


@attrs.frozen
class Path:
    """A write path: the call, and the change description it is fenced by."""

    name: str
    call: Callable[[JobStore, Case], Awaitable[object]]
    change: Callable[[Case], JobChange]


def _write(case: Case, *, with_event: bool = True) -> ProgressWrite:
    return ProgressWrite(lease=case.lease, progress=case.progress, step="s", with_event=with_event)


def _checkpoint(case: Case) -> JobChange:
    """A worker's checkpoint with its own progress (the change the service makes)."""
    write = CheckpointWrite(data={"k": 1}, size_bytes=7, progress=case.progress, keys=("k",))
    return JobChange(
        action="checkpoint",
        lease=case.lease,
        progress_at_most=case.progress,
        fields={"last_heartbeat_at": NOW, "progress": case.progress},
        checkpoint=write,
        events=(EventSpec(type=EventType.CHECKPOINT, data={"size_bytes": 7}),),
    )


PATHS = [
    Path(
        "heartbeat", lambda s, c: s.heartbeat(c.job_id, c.lease), lambda c: heartbeat_fence(c.lease)
    ),
    Path(
        "progress",
        lambda s, c: s.update_progress(c.job_id, _write(c)),
        lambda c: progress_change(_write(c)),
    ),
    Path(
        "progress without event",
        lambda s, c: s.update_progress(c.job_id, _write(c, with_event=False)),
        lambda c: progress_change(_write(c, with_event=False)),
    ),
    Path(
        "progress applied alone",
        lambda s, c: s.apply(c.job_id, progress_change(_write(c))),
        lambda c: progress_change(_write(c)),
    ),
    Path("checkpoint", lambda s, c: s.apply(c.job_id, _checkpoint(c)), _checkpoint),
    Path(
        "trailing progress",
        lambda s, c: s.apply(c.job_id, trailing_progress_change(c.lease)),
        lambda c: trailing_progress_change(c.lease),
    ),
]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres unbatched", marks=pytest.mark.postgres),
    ]
)
async def fenced_store(request: pytest.FixtureRequest) -> AsyncIterator[JobStore]:
    if request.param == "memory":
        store: JobStore = MemoryJobStore(backlog_size=TEST_BACKLOG)
    else:
        from tests.support.postgres import open_postgres_store

        batching: dict[str, bool] = {}
        if request.param == "postgres unbatched":
            batching = {
                "batch_heartbeats": False,
                "batch_progress": False,
                "batch_checkpoints": False,
            }
        dsn = request.getfixturevalue("postgres_dsn")
        store = await open_postgres_store(dsn, backlog_size=TEST_BACKLOG, **batching)
    try:
        yield store
    finally:
        await store.close()


async def _cases(store: JobStore) -> list[Case]:
    """One job per situation a fence tells apart (created ones last: claims take the oldest)."""
    repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
    cases: list[Case] = []
    for name in ("applies", "foreign lease", "progress going down"):
        running = await drive(repo, S.RUNNING)
        assert running.lease is not None
        await store.update_progress(
            running.job.id, ProgressWrite(lease=running.lease, progress=STORED_PROGRESS, step=None)
        )
        lease = "not-the-lease" if name == "foreign lease" else running.lease
        progress = STORED_PROGRESS - 10 if name == "progress going down" else REPORTED
        cases.append(Case(name, running.job.id, lease, progress))
    for state in (S.COMPLETED, S.FAILED, S.CANCELLED, S.PAUSED, S.CREATED):
        driven = await drive(repo, state)
        cases.append(Case(f"{state}", driven.job.id, driven.lease or "never-leased"))
    cases.append(Case("missing job", str(uuid.uuid4()), "any"))
    cases.append(Case("malformed id", "not-a-job-id", "any"))
    return cases


async def _outcome(call: Awaitable[object]) -> JobspineError | None:
    try:
        await call
    except JobspineError as error:
        return error
    return None


def _view(error: JobspineError | None) -> tuple[str, str, dict[str, object]] | None:
    if error is None:
        return None
    return (type(error).__name__, error.message, dict(error.details or {}))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_each_fenced_write_refuses_what_its_change_refuses(
    fenced_store: JobStore, path: Path
) -> None:
    cases = await _cases(fenced_store)
    now = datetime.now(UTC)
    expected = {
        case.name: _view(refusal(await fenced_store.get(case.job_id), path.change(case), now))
        for case in cases
    }
    outcomes = await asyncio.gather(*(_outcome(path.call(fenced_store, c)) for c in cases))
    got = {case.name: _view(error) for case, error in zip(cases, outcomes, strict=True)}
    assert got == expected
    # The cases do cover every answer a fence gives.
    kinds = {view[0] if view else None for view in expected.values()}
    assert {None, "LeaseLost", "NotFound"} <= kinds
    if path.change(cases[0]).progress_at_most is not None:
        assert "InvalidProgress" in kinds
