"""Helpers that drive jobs through the repository into a given state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server.actors import Actor, Role
from server.commands.create import parse_create
from server.commands.worker import parse_claim, parse_complete, parse_fail
from server.service import JobRepository

ALICE = Actor(id="alice")
BOB = Actor(id="bob")
ADMIN = Actor(id="root", role=Role.ADMIN)
WORKER = Actor(id="worker-1", role=Role.WORKER)

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Driven:
    """A job in some state, with the lease of its latest claim (if any)."""

    job: JobRecord
    lease: str | None = None


async def wait_until(
    check: Callable[[], Awaitable[T | None]], *, within: float = 5.0, interval: float = 0.01
) -> T:
    """Poll ``check`` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def create(repo: JobRepository, owner: Actor = ALICE, type: str = "research") -> JobRecord:
    return (await repo.create(owner, parse_create({"type": type, "input": {"query": "q"}}))).job


async def claim(repo: JobRepository, job_id: str, *, types: list[str] | None = None) -> str:
    """Claim until ``job_id`` is the one claimed (tests create few jobs)."""
    claimed = await repo.claim(parse_claim({"types": types}, default_worker_id=WORKER.id))
    assert claimed is not None, "nothing claimable"
    assert claimed.job.id == job_id, "claimed another job than expected"
    return claimed.lease


async def drive(repo: JobRepository, state: JobState, owner: Actor = ALICE) -> Driven:
    """A fresh job brought to ``state`` by the contract's own transitions."""
    job = await create(repo, owner)
    if state is JobState.CREATED:
        return Driven(job=job)
    if state is JobState.PAUSED:
        return Driven(job=await repo.pause(owner, job.id))
    lease = await claim(repo, job.id)
    if state is JobState.RUNNING:
        return Driven(job=await repo.get_job(owner, job.id), lease=lease)
    if state is JobState.COMPLETED:
        return Driven(
            job=await repo.complete(
                parse_complete({"job_id": job.id, "lease": lease, "result": {"ok": True}})
            ),
            lease=lease,
        )
    if state is JobState.FAILED:
        return Driven(
            job=await repo.fail(
                parse_fail({"job_id": job.id, "lease": lease, "error": {"message": "boom"}})
            ),
            lease=lease,
        )
    if state is JobState.CANCELLED:
        return Driven(job=await repo.cancel(owner, job.id), lease=lease)
    raise AssertionError(state)


async def running(repo: JobRepository, owner: Actor = ALICE) -> tuple[str, str]:
    """A fresh job claimed by :data:`WORKER`: its id and lease."""
    driven = await drive(repo, JobState.RUNNING, owner)
    assert driven.lease
    return driven.job.id, driven.lease
