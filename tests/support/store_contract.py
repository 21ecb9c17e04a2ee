"""The repository the store contract suite drives (``tests/test_store_*.py``)."""

from __future__ import annotations

from server.commands.user import parse_read_stream
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from tests.support.jobs import ADMIN

#: The checkpoint size limit of the contract's repository (small, so tests reach it).
MAX_CHECKPOINT = 1024


def contract_repo(store: JobStore) -> JobRepository:
    """A repository over ``store`` in which every progress report appends its event, so the
    stores' contract is checked on each change (the per-job event rate has its own tests)."""
    settings = RepositorySettings(max_checkpoint_bytes=MAX_CHECKPOINT, progress_events_per_s=0)
    return JobRepository(store, settings)


async def events_of(repo: JobRepository, job_id: str) -> list[tuple[int, str]]:
    """The job's retained events as (seq, type), oldest first."""
    replay = await repo.replay(ADMIN, parse_read_stream({"job_id": job_id, "after_seq": 0}))
    return [(e.seq, str(e.type)) for e in replay.events]
