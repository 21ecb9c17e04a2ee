"""The store contract, reads: the event stream and its backlog, sync, cursor pagination,
filters, stats and the audit trail; on both stores.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jobspine_shared.states import JobState
from server.actors import Actor
from server.commands.create import parse_create
from server.commands.user import (
    ListJobs,
    ReadAudit,
    parse_audit,
    parse_list,
    parse_read_stream,
    parse_restart,
    parse_sync,
)
from server.commands.worker import parse_progress
from server.errors import NotFound, ValidationFailed
from server.realtime.sync import sync_results
from server.rendering import audit_to_wire, counts_to_wire, page_to_wire
from server.service import JobRepository
from server.store.base import JobStore
from tests.support.counted_reads import CountedReads
from tests.support.jobs import ADMIN, ALICE, BOB, create, drive, running
from tests.support.server import TEST_BACKLOG

S = JobState


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


async def test_count_active_leaves_ended_jobs_out(repo: JobRepository, store: JobStore) -> None:
    """``MAX_ACTIVE_JOBS_PER_USER``'s count: created, running and paused jobs of one user."""
    await drive(repo, S.RUNNING, owner=BOB)
    await drive(repo, S.COMPLETED, owner=BOB)
    # Those claimed first: a claim takes the oldest created job.
    for state in (S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED, S.PAUSED, S.CREATED):
        await drive(repo, state)
        await drive(repo, state)
    assert await store.count_active(ALICE.id) == 6
    assert await store.count_active(BOB.id) == 1
    assert await store.count_active("nobody") == 0
    by_state = await store.count_by_state(ALICE.id)
    assert sum(by_state.values()) == 12  # the ended ones are there, and not counted


async def test_audit_trail_records_who_did_what(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    await repo.pause(ALICE, job.id)
    await repo.resume(ADMIN, job.id)
    await repo.cancel(ALICE, job.id)
    await repo.restart(ALICE, parse_restart({"job_id": job.id}))
    trail = await repo.audit_trail(ALICE, ReadAudit(job_id=job.id))
    assert [(a.action, a.actor) for a in trail.entries] == [
        ("pause", "alice"),
        ("resume", "root"),
        ("cancel", "alice"),
        ("restart", "alice"),
    ]
    assert trail.next_after is None
    assert trail.entries[1].details["role"] == "admin"
    assert all(a.at is not None for a in trail.entries)
    with pytest.raises(NotFound):
        await repo.audit_trail(BOB, ReadAudit(job_id=job.id))


async def paused_and_resumed(repo: JobRepository, job_id: str, times: int) -> None:
    """Two audit entries a round: pause, resume."""
    for _ in range(times):
        await repo.pause(ALICE, job_id)
        await repo.resume(ALICE, job_id)


async def audit_page(repo: JobRepository, actor: Actor, **query: Any) -> dict[str, Any]:
    """A page as the REST route reads and answers it: parsed query in, wire shape out."""
    return audit_to_wire(await repo.audit_trail(actor, parse_audit(query)))


async def test_a_long_audit_trail_is_read_in_pages(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    await paused_and_resumed(repo, job.id, 30)
    first = await audit_page(repo, ALICE, job_id=job.id)  # the default page: 50, as lists
    assert len(first["items"]) == 50
    assert first["next_cursor"] is not None
    rest = await audit_page(repo, ALICE, job_id=job.id, cursor=first["next_cursor"])
    assert (len(rest["items"]), rest["next_cursor"]) == (10, None)

    pages = []
    cursor = None
    while True:
        page = await audit_page(repo, ALICE, job_id=job.id, limit=7, cursor=cursor)
        pages.append(len(page["items"]))
        if len(pages) == 2:  # entries written between pages come in later pages
            await paused_and_resumed(repo, job.id, 1)
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert pages == [7] * 8 + [6]
    whole = await audit_page(repo, ALICE, job_id=job.id, limit=200)
    assert [a["action"] for a in whole["items"]] == ["pause", "resume"] * 31
    assert whole["next_cursor"] is None
    with pytest.raises(NotFound):
        await audit_page(repo, BOB, job_id=job.id, cursor=first["next_cursor"])


async def test_bad_audit_pages_are_refused(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    await paused_and_resumed(repo, job.id, 2)
    await create(repo, ALICE)
    list_cursor = page_to_wire(await repo.list_jobs(ALICE, ListJobs(limit=1)))["next_cursor"]
    audit_cursor = (await audit_page(repo, ALICE, job_id=job.id, limit=1))["next_cursor"]
    assert list_cursor is not None
    assert audit_cursor is not None
    refused: list[dict[str, Any]] = [
        {"limit": 0},
        {"limit": 201},
        {"limit": "3"},
        {"cursor": "%%%"},
        {"cursor": 3},
        {"cursor": list_cursor},  # a cursor of the job list is not one of a trail
    ]
    for bad in refused:
        with pytest.raises(ValidationFailed):
            parse_audit({"job_id": job.id, **bad})
    with pytest.raises(ValidationFailed):
        parse_list({"cursor": audit_cursor})


async def test_sync_reads_all_its_jobs_in_one_store_read(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    await repo.update_progress(parse_progress({"job_id": job_id, "lease": lease, "progress": 10}))
    mine = [await create(repo, ALICE) for _ in range(30)]
    theirs = await create(repo, BOB)
    reads = CountedReads(repo.store)
    cursors = {j.id: 0 for j in mine} | {job_id: 2, theirs.id: 0, str(uuid.uuid4()): 0, "x": 0}

    results = await sync_results(repo, ALICE, parse_sync({"cursors": cursors}))

    assert (reads.batched, reads.single) == (1, 0)
    assert list(results) == list(cursors)
    assert all(results[j.id]["recovered"] for j in mine)
    assert [e["type"] for e in results[job_id]["events"]] == ["job:progress"]
    not_found = {"error": {"code": "not_found", "message": "No such job."}}
    assert [results[key] for key in list(cursors)[-3:]] == [not_found] * 3
    everyone = await sync_results(repo, ADMIN, parse_sync({"cursors": {theirs.id: 0}}))
    assert everyone[theirs.id]["recovered"] is True
    assert reads.batched == 2


async def test_a_batched_read_reads_only_the_owner_s_jobs(
    store: JobStore, repo: JobRepository
) -> None:
    mine, theirs = await create(repo, ALICE), await create(repo, BOB)
    asked = {mine.id: 0, theirs.id: 0, str(uuid.uuid4()): 0}
    batch = await store.read_streams(asked, owner="alice", max_bytes=2**20)
    assert list(batch.reads) == [mine.id]
    assert [e.seq for e in batch.reads[mine.id].events] == [1]
    assert batch.unread == ()
    anyone = await store.read_streams(asked, owner=None, max_bytes=2**20)
    assert list(anyone.reads) == [mine.id, theirs.id]


async def test_a_batched_read_stops_at_its_byte_budget(
    store: JobStore, repo: JobRepository, store_kind: str
) -> None:
    # About 20 kB of JSON each: the input, and the job:created snapshot that carries it.
    big = {"type": "t", "input": {"blob": "x" * 10_000}}
    jobs = [(await repo.create(ALICE, parse_create(big))).job for _ in "abcd"]
    batch = await store.read_streams({j.id: 0 for j in jobs}, owner=None, max_bytes=30_000)
    if store_kind == "memory":  # it materialises nothing (the reads share its objects)
        assert (len(batch.reads), batch.unread) == (4, ())
    else:  # the first always; the second starts under the budget and ends past it
        assert list(batch.reads) == [jobs[0].id, jobs[1].id]
        assert batch.unread == (jobs[2].id, jobs[3].id)
    tiny = await store.read_streams({j.id: 0 for j in jobs}, owner=None, max_bytes=1)
    assert jobs[0].id in tiny.reads
