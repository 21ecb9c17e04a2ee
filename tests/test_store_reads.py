"""The store contract, reads: the event stream and its backlog, sync, cursor pagination,
filters, stats and the audit trail; on both stores.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jobspine_shared.states import JobState
from server.commands.create import parse_create
from server.commands.user import ListJobs, parse_list, parse_read_stream, parse_restart, parse_sync
from server.commands.worker import parse_progress
from server.errors import NotFound, ValidationFailed
from server.realtime.sync import sync_results
from server.rendering import counts_to_wire
from server.service import JobRepository
from server.store.base import JobStore
from tests.support.jobs import ADMIN, ALICE, BOB, create, drive, running
from tests.support.server import TEST_BACKLOG
from tests.support.store_contract import contract_repo

S = JobState


@pytest.fixture
def repo(store: JobStore) -> JobRepository:
    return contract_repo(store)


async def test_backlog_keeps_the_last_events_and_says_when_it_covers(
    repo: JobRepository,
) -> None:
    job_id, lease = await running(repo)
    for value in range(1, 11):
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": value})
        )
    latest = (await repo.get_job(ALICE, job_id)).seq
    assert latest == 12
    covered = await repo.replay(
        ALICE, parse_read_stream({"job_id": job_id, "after_seq": latest - TEST_BACKLOG})
    )
    assert covered.recovered is True
    assert [e.seq for e in covered.events] == list(range(latest - TEST_BACKLOG + 1, latest + 1))
    assert [e.data["progress"] for e in covered.events] == [6, 7, 8, 9, 10]
    too_old = await repo.replay(
        ALICE, parse_read_stream({"job_id": job_id, "after_seq": latest - TEST_BACKLOG - 1})
    )
    assert (too_old.recovered, too_old.events) == (False, ())
    assert too_old.job.seq == latest
    up_to_date = await repo.replay(
        ALICE, parse_read_stream({"job_id": job_id, "after_seq": latest})
    )
    assert (up_to_date.recovered, up_to_date.events) == (True, ())
    ahead = await repo.replay(ALICE, parse_read_stream({"job_id": job_id, "after_seq": latest + 1}))
    assert ahead.recovered is False
    no_cursor = await repo.replay(ALICE, parse_read_stream({"job_id": job_id}))
    assert no_cursor.recovered is False
    other_epoch = await repo.replay(
        ALICE, parse_read_stream({"job_id": job_id, "after_seq": latest - 1, "epoch": "other"})
    )
    assert other_epoch.recovered is False
    same_epoch = await repo.replay(
        ALICE,
        parse_read_stream({"job_id": job_id, "after_seq": latest - 1, "epoch": covered.job.epoch}),
    )
    assert [e.seq for e in same_epoch.events] == [latest]


@pytest.mark.parametrize("cursor", [-1, 1.5, "3", True])
async def test_replay_refuses_malformed_cursors(repo: JobRepository, cursor: Any) -> None:
    job = await create(repo)
    with pytest.raises(ValidationFailed):
        await repo.replay(ALICE, parse_read_stream({"job_id": job.id, "after_seq": cursor}))


async def test_sync_answers_per_job(repo: JobRepository) -> None:
    mine = await create(repo, ALICE)
    theirs = await create(repo, BOB)
    missing = str(uuid.uuid4())
    cursors = {mine.id: 0, theirs.id: 0, missing: 0, "junk": 0}
    results = await sync_results(repo, ALICE, parse_sync({"cursors": cursors}))
    assert results[mine.id]["recovered"] is True
    assert [e["seq"] for e in results[mine.id]["events"]] == [1]
    for key in (theirs.id, missing, "junk"):
        assert results[key] == {"error": {"code": "not_found", "message": "No such job."}}
    with pytest.raises(ValidationFailed):
        parse_sync({"cursors": {mine.id: -1}})
    with pytest.raises(ValidationFailed):
        parse_sync({"cursors": [mine.id]})


# -- listing, stats, audit -----------------------------------------------------------------


async def test_cursor_pagination_is_stable_under_inserts(repo: JobRepository) -> None:
    created = [await create(repo, ALICE) for _ in range(7)]
    await create(repo, BOB)
    first = await repo.list_jobs(ALICE, parse_list({"limit": 3}))
    assert first.next_cursor is not None
    newcomer = await create(repo, ALICE)
    second = await repo.list_jobs(ALICE, ListJobs(limit=3, after=first.next_cursor))
    assert second.next_cursor is not None
    third = await repo.list_jobs(ALICE, ListJobs(limit=3, after=second.next_cursor))
    assert third.next_cursor is None
    seen = [j.id for j in first.items + second.items + third.items]
    assert seen == [j.id for j in reversed(created)]
    assert newcomer.id not in seen
    everyone = await repo.list_jobs(ADMIN, parse_list({"limit": 50}))
    assert len(everyone.items) == 9
    bobs = await repo.list_jobs(ADMIN, parse_list({"user_id": "bob"}))
    assert {j.user_id for j in bobs.items} == {"bob"}
    assert {
        j.user_id for j in (await repo.list_jobs(ALICE, parse_list({"user_id": "bob"}))).items
    } == {"alice"}


async def test_list_filters_by_state_and_type(repo: JobRepository) -> None:
    await drive(repo, S.PAUSED)
    other = (await repo.create(ALICE, parse_create({"type": "trade", "input": {}}))).job
    paused = await repo.list_jobs(ALICE, parse_list({"state": "paused"}))
    assert [j.state for j in paused.items] == [S.PAUSED]
    trades = await repo.list_jobs(ALICE, parse_list({"type": "trade"}))
    assert [j.id for j in trades.items] == [other.id]
    for bad in ({"state": "nope"}, {"limit": 0}, {"limit": 201}, {"cursor": "%%%"}):
        with pytest.raises(ValidationFailed):
            await repo.list_jobs(ALICE, parse_list(bad))


async def test_stats_count_by_state(repo: JobRepository) -> None:
    await drive(repo, S.PAUSED)
    await drive(repo, S.COMPLETED)
    await drive(repo, S.CREATED, owner=BOB)
    mine = counts_to_wire(await repo.get_stats(ALICE))
    assert mine["total"] == 2
    assert mine["by_state"]["paused"] == 1
    assert mine["by_state"]["completed"] == 1
    assert mine["by_state"]["created"] == 0
    assert counts_to_wire(await repo.get_stats(ADMIN))["total"] == 3


async def test_audit_trail_records_who_did_what(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    await repo.pause(ALICE, job.id)
    await repo.resume(ADMIN, job.id)
    await repo.cancel(ALICE, job.id)
    await repo.restart(ALICE, parse_restart({"job_id": job.id}))
    trail = await repo.audit_trail(ALICE, job.id)
    assert [(a.action, a.actor) for a in trail] == [
        ("pause", "alice"),
        ("resume", "root"),
        ("cancel", "alice"),
        ("restart", "alice"),
    ]
    assert trail[1].details["role"] == "admin"
    assert all(a.at is not None for a in trail)
    with pytest.raises(NotFound):
        await repo.audit_trail(BOB, job.id)
