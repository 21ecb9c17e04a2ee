"""The store contract under concurrency: claims take each job once and in order, concurrent
progress gets consecutive seqs, a cancel racing a complete applies exactly one; both stores.
"""

from __future__ import annotations

import asyncio

from jobspine_shared.states import JobState
from server.commands.create import parse_create
from server.commands.user import parse_read_stream
from server.commands.worker import parse_claim, parse_complete, parse_progress
from server.errors import InvalidTransition, LeaseLost
from server.service import JobRepository
from tests.support.jobs import ALICE, WORKER, claim, create, drive, running
from tests.support.server import TEST_BACKLOG

S = JobState


# -- concurrency ---------------------------------------------------------------------------


async def test_concurrent_claims_take_each_job_once(repo: JobRepository) -> None:
    jobs = {(await create(repo)).id for _ in range(5)}
    claims = await asyncio.gather(
        *(repo.claim(parse_claim({}, default_worker_id=WORKER.id)) for _ in range(20))
    )
    taken = [c.job.id for c in claims if c is not None]
    assert sorted(taken) == sorted(jobs)


async def test_claim_takes_the_oldest_of_the_given_types(repo: JobRepository) -> None:
    oldest = (await repo.create(ALICE, parse_create({"type": "trade", "input": {}}))).job
    await repo.create(ALICE, parse_create({"type": "research", "input": {}}))
    newer_trade = (await repo.create(ALICE, parse_create({"type": "trade", "input": {}}))).job
    assert (
        await repo.claim(parse_claim({"types": ["analysis"]}, default_worker_id=WORKER.id)) is None
    )
    first = await repo.claim(parse_claim({"types": ["trade"]}, default_worker_id=WORKER.id))
    second = await repo.claim(parse_claim({"types": ["trade"]}, default_worker_id=WORKER.id))
    assert first is not None
    assert second is not None
    assert (first.job.id, second.job.id) == (oldest.id, newer_trade.id)
    assert await repo.claim(parse_claim({"types": ["trade"]}, default_worker_id=WORKER.id)) is None


async def test_held_jobs_are_not_claimable(repo: JobRepository) -> None:
    held = await drive(repo, S.PAUSED)
    assert await repo.claim(parse_claim({}, default_worker_id=WORKER.id)) is None
    await repo.resume(ALICE, held.job.id)
    assert await claim(repo, held.job.id)


async def test_concurrent_progress_gives_consecutive_seqs(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    start = (await repo.get_job(ALICE, job_id)).seq
    await asyncio.gather(
        *(
            repo.update_progress(parse_progress({"job_id": job_id, "lease": lease, "progress": 10}))
            for _ in range(25)
        )
    )
    job = await repo.get_job(ALICE, job_id)
    assert job.seq == start + 25
    replay = await repo.replay(
        ALICE, parse_read_stream({"job_id": job_id, "after_seq": job.seq - TEST_BACKLOG})
    )
    assert [e.seq for e in replay.events] == list(range(job.seq - TEST_BACKLOG + 1, job.seq + 1))


async def test_concurrent_cancel_and_complete_apply_exactly_one(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    outcomes = await asyncio.gather(
        repo.cancel(ALICE, driven.job.id),
        repo.complete(
            parse_complete({"job_id": driven.job.id, "lease": driven.lease, "result": None})
        ),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1
    assert isinstance(errors[0], LeaseLost | InvalidTransition)
    job = await repo.get_job(ALICE, driven.job.id)
    assert job.state in (S.CANCELLED, S.COMPLETED)
    assert job.seq == driven.job.seq + 1
