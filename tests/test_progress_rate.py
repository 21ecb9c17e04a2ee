"""At most N live ``job:progress`` events per job and second, on both stores.

What must hold whatever the host's speed (no timing assertions): every report is stored, seqs
never skip, the last value always ends up in an event, and another event of the job comes
after the last progress value, never before it.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobspine_shared.states import JobState
from server.commands.worker import parse_complete, parse_progress
from server.config import load_settings
from server.errors import ConfigError, InvalidProgress, LeaseLost
from server.keys import METRICS
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from tests.support.jobs import ALICE, running, wait_until
from tests.support.server import TIMEOUT_S, StartServer, connect_user, connect_worker

S = JobState
#: Slow enough that a burst of reports always falls within one window, however slow the
#: host; fast enough that waiting for a trailing event costs well under a second.
RATE = 2.0
BURST = 20


@pytest.fixture
async def repo(store: JobStore) -> Any:
    repository = JobRepository(store, RepositorySettings(progress_events_per_s=RATE))
    yield repository
    await repository.close()


async def stream(repo: JobRepository, job_id: str) -> list[tuple[int, str, Any]]:
    """The retained events (the backlog is short: the last few), oldest first."""
    read = await repo.store.read_stream(job_id, 0)
    assert read is not None
    return [(e.seq, str(e.type), e.data.get("progress")) for e in read.events]


async def report_burst(repo: JobRepository, job_id: str, lease: str, count: int = BURST) -> None:
    """Progress 1, 2, … ``count`` reported in a row, as fast as the repository takes them."""
    for i in range(1, count + 1):
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": float(i)})
        )


def assert_contiguous(events: list[tuple[int, str, Any]], last_seq: int) -> None:
    seqs = [seq for seq, _, _ in events]
    assert seqs == list(range(seqs[0], last_seq + 1)), seqs


async def test_a_burst_stores_every_value_and_ends_with_the_latest_event(
    repo: JobRepository,
) -> None:
    job_id, lease = await running(repo)
    for i in range(1, BURST + 1):
        await repo.update_progress(
            parse_progress(
                {"job_id": job_id, "lease": lease, "progress": float(i), "step": f"step {i}"}
            )
        )
        # Stored at once, event or not.
        job = await repo.get_job(ALICE, job_id)
        assert (job.progress, job.step) == (float(i), f"step {i}")

    async def last_event_has_the_final_value() -> bool:
        events = await stream(repo, job_id)
        return events[-1][1:] == ("job:progress", float(BURST))

    await wait_until(last_event_has_the_final_value, within=TIMEOUT_S)
    events = await stream(repo, job_id)
    job = await repo.get_job(ALICE, job_id)
    assert_contiguous(events, job.seq)
    progress = [value for _, kind, value in events if kind == "job:progress"]
    assert len(progress) < BURST, "every report appended an event"
    assert progress == sorted(progress)
    assert repo.progress_gate.held >= BURST - len(progress)
    # The trailing event carries the step of the stored job too.
    read = await repo.store.read_stream(job_id, job.seq - 1)
    assert read is not None
    assert read.events[-1].data == {"progress": float(BURST), "step": f"step {BURST}"}


async def test_another_event_of_the_job_comes_after_the_latest_progress(
    repo: JobRepository,
) -> None:
    job_id, lease = await running(repo)
    await report_burst(repo, job_id, lease)
    await repo.complete(parse_complete({"job_id": job_id, "lease": lease, "result": {"ok": True}}))

    events = await stream(repo, job_id)
    assert events[-1][1] == "job:completed"
    assert events[-2][1:] == ("job:progress", float(BURST))
    assert_contiguous(events, (await repo.get_job(ALICE, job_id)).seq)
    assert repo.progress_gate.pending == 0 or not repo.progress_gate.has_held(job_id)


async def test_a_user_cancel_also_comes_after_the_latest_progress(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    await report_burst(repo, job_id, lease)
    await repo.cancel(ALICE, job_id)

    events = await stream(repo, job_id)
    assert [kind for _, kind, _ in events[-2:]] == ["job:progress", "job:cancelled"]
    assert events[-2][2] == float(BURST)
    with pytest.raises(LeaseLost):
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": 99.0})
        )


async def test_closing_the_repository_appends_pending_trailing_events(
    repo: JobRepository,
) -> None:
    jobs = [await running(repo) for _ in range(3)]
    for job_id, lease in jobs:
        await report_burst(repo, job_id, lease, count=5)
    await repo.close()  # no waiting for the windows to close
    for job_id, _ in jobs:
        events = await stream(repo, job_id)
        assert events[-1][1:] == ("job:progress", 5.0)
        assert_contiguous(events, (await repo.get_job(ALICE, job_id)).seq)


async def test_held_reports_are_checked_like_any_other(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    await repo.update_progress(
        parse_progress({"job_id": job_id, "lease": lease, "progress": 50.0})
    )  # live
    before = (await repo.get_job(ALICE, job_id)).seq
    with pytest.raises(InvalidProgress):
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": 10.0})
        )  # would be held, refused first
    with pytest.raises(LeaseLost):
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": "not-the-lease", "progress": 60.0})
        )
    job = await repo.get_job(ALICE, job_id)
    assert (job.progress, job.seq) == (50.0, before)
    assert not repo.progress_gate.has_held(job_id)


async def test_zero_means_every_report_appends_its_event(store: JobStore) -> None:
    repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
    job_id, lease = await running(repo)
    start = (await repo.get_job(ALICE, job_id)).seq
    await report_burst(repo, job_id, lease)
    events = await stream(repo, job_id)
    assert (await repo.get_job(ALICE, job_id)).seq == start + BURST
    assert events[-1][1:] == ("job:progress", float(BURST))


# -- over the wire ----------------------------------------------------------------------------


async def test_subscribers_see_gapless_seqs_and_the_final_value_live(
    live_store: JobStore, start_server: StartServer
) -> None:
    server = await start_server(env={"PROGRESS_EVENTS_PER_S": str(RATE)}, store=live_store)
    user = await connect_user(server, "u1")
    created = await user.ok("job:create", {"type": "research", "input": {}})
    job_id = created["job"]["id"]
    worker = await connect_worker(server)
    claim = await worker.ok("claim", {})
    assert claim["job"]["id"] == job_id
    for i in range(1, BURST + 1):
        await worker.ok(
            "progress", {"job_id": job_id, "lease": claim["lease"], "progress": float(i)}
        )
    status, body = await server.rest("GET", f"/api/jobs/{job_id}", token=server.token("u1"))
    assert status == 200
    assert body["progress"] == float(BURST)

    def final_value_arrived(_: Any) -> bool:
        events = user.events.of_job(job_id)
        return bool(events) and events[-1]["data"].get("progress") == float(BURST)

    await user.events.wait_for(final_value_arrived, within=TIMEOUT_S)
    received = user.events.of_job(job_id)
    seqs = [event["seq"] for event in received]
    assert seqs == list(range(1, seqs[-1] + 1)), seqs
    progress_events = [e for e in received if e["type"] == "job:progress"]
    assert len(progress_events) < BURST
    status, body = await server.rest("GET", f"/api/jobs/{job_id}", token=server.token("u1"))
    assert body["seq"] == seqs[-1]
    throttled = server.app[METRICS].progress_events_throttled
    assert throttled >= BURST - len(progress_events)
    status, text = await server.rest("GET", "/metrics")
    assert f"jobspine_progress_events_throttled_total {throttled}" in str(text)


# -- configuration ----------------------------------------------------------------------------

SECRET = "x" * 32


def test_the_rate_and_the_queue_bound_are_configured_and_validated() -> None:
    defaults = load_settings({"JWT_SECRET": SECRET})
    assert (defaults.progress_events_per_s, defaults.max_client_queue) == (10.0, 5000)
    chosen = load_settings(
        {"JWT_SECRET": SECRET, "PROGRESS_EVENTS_PER_S": "2.5", "MAX_CLIENT_QUEUE": "100"}
    )
    assert (chosen.progress_events_per_s, chosen.max_client_queue) == (2.5, 100)
    assert (
        load_settings({"JWT_SECRET": SECRET, "PROGRESS_EVENTS_PER_S": "0"}).progress_events_per_s
        == 0
    )
    for variable, value in [
        ("PROGRESS_EVENTS_PER_S", "-1"),
        ("PROGRESS_EVENTS_PER_S", "nan"),
        ("PROGRESS_EVENTS_PER_S", "fast"),
        ("MAX_CLIENT_QUEUE", "0"),
        ("MAX_CLIENT_QUEUE", "1.5"),
    ]:
        with pytest.raises(ConfigError, match=rf"^{variable}: expected "):
            load_settings({"JWT_SECRET": SECRET, variable: value})
