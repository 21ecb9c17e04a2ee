"""The memory store keeps one copy of a job's input and of its result, not one per place
that shows it (the record, the ``job:created`` snapshot, the ``job:completed`` event).

Retained memory is measured with ``tracemalloc`` as a bound (allocations still alive after
the call), never as a timing: the store must retain less than 1.5 copies of the value.
"""

from __future__ import annotations

import copy
import gc
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jobspine_shared.states import JobState
from server.commands.create import parse_create
from server.commands.user import parse_read_stream, parse_restart
from server.commands.worker import parse_complete, parse_fail
from server.service import JobRepository, RepositorySettings
from server.store.memory import MemoryJobStore
from tests.support.jobs import ALICE, claim, running
from tests.support.server import TEST_BACKLOG

T = TypeVar("T")

#: Many small objects: a Python object costs far more than its JSON text, so a second copy
#: shows clearly (about 1.5 MB a copy here, 60 kB of JSON).
ITEMS = 20_000


def many_objects() -> dict[str, Any]:
    return {"items": [{} for _ in range(ITEMS)]}


async def retained_by(call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """What ``call`` returns, and how many bytes it left allocated."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        outcome = await call()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return outcome, after - before


async def one_copy_of(value: dict[str, Any]) -> int:
    async def copied() -> dict[str, Any]:
        return copy.deepcopy(value)

    _, size = await retained_by(copied)
    return size


def repository() -> JobRepository:
    store = MemoryJobStore(backlog_size=TEST_BACKLOG)
    return JobRepository(store, RepositorySettings(progress_events_per_s=0))


async def test_a_created_job_keeps_one_copy_of_its_input() -> None:
    repo = repository()
    big = many_objects()
    one_copy = await one_copy_of(big)

    async def create() -> Any:
        return (await repo.create(ALICE, parse_create({"type": "research", "input": big}))).job

    job, retained = await retained_by(create)

    assert retained < 1.5 * one_copy, (retained, one_copy)
    big["items"].append({"changed": True})  # the caller's object is not the store's
    stored = await repo.get_job(ALICE, job.id)
    assert len(stored.input["items"]) == ITEMS
    (created,) = (
        await repo.replay(ALICE, parse_read_stream({"job_id": job.id, "after_seq": 0}))
    ).events
    assert created.data["job"]["input"] == stored.input


async def test_a_completed_job_keeps_one_copy_of_its_result() -> None:
    repo = repository()
    job_id, lease = await running(repo)
    big = many_objects()
    one_copy = await one_copy_of(big)

    async def complete() -> Any:
        return await repo.complete(
            parse_complete({"job_id": job_id, "lease": lease, "result": big})
        )

    _, retained = await retained_by(complete)

    assert retained < 1.5 * one_copy, (retained, one_copy)
    big["items"].clear()
    stored = await repo.get_job(ALICE, job_id)
    assert stored.state is JobState.COMPLETED
    assert stored.result is not None
    assert len(stored.result["items"]) == ITEMS
    last = (
        await repo.replay(ALICE, parse_read_stream({"job_id": job_id, "after_seq": stored.seq - 1}))
    ).events
    assert last[0].data["result"] == stored.result


async def test_a_restart_with_a_new_input_keeps_one_copy_of_it() -> None:
    repo = repository()
    job_id, lease = await running(repo)
    await repo.fail(
        parse_fail({"job_id": job_id, "lease": lease, "error": {"message": "try again"}})
    )
    big = many_objects()
    one_copy = await one_copy_of(big)

    async def restart() -> Any:
        return await repo.restart(ALICE, parse_restart({"job_id": job_id, "input": big}))

    _, retained = await retained_by(restart)

    assert retained < 1.5 * one_copy, (retained, one_copy)
    big["items"].clear()
    assert await claim(repo, job_id)
    assert len((await repo.get_job(ALICE, job_id)).input["items"]) == ITEMS


def test_an_event_shares_no_mutable_value_with_the_change_that_made_it() -> None:
    from jobspine_shared.events import EventType
    from server.store.memory_copies import event_data
    from server.store.model import EventSpec, StoredJob
    from tests.support.wire_samples import record

    job = StoredJob(record=record())
    flat = {"progress": 40.0, "step": "s", "size_bytes": 3, "final": True, "note": None}
    tries = [1, 2]
    nested = {"error": {"code": "x", "details": {"tries": tries}}}
    flat_data = event_data(EventSpec(type=EventType.PROGRESS, data=flat), job)
    nested_data = event_data(EventSpec(type=EventType.FAILED, data=nested), job)
    assert flat_data == flat
    assert flat_data is not flat
    assert nested_data == nested
    tries.append(3)
    flat["step"] = "changed"
    assert nested_data["error"]["details"]["tries"] == [1, 2]
    assert flat_data["step"] == "s"
