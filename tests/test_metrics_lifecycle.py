"""Lifecycle metrics: transitions counted once in the repository's commit path, queue-wait
and run-time histograms, jobs by state and type (one cached store query), and the
``METRICS_PORT`` site."""

from __future__ import annotations

from collections import Counter

import pytest

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server.commands.user import parse_restart
from server.commands.worker import parse_complete, parse_progress
from server.errors import InvalidTransition
from server.lifecycle_metrics import JobsGauge, LifecycleMetrics
from server.metrics import exposition
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from tests.support.jobs import ALICE, BOB, claim, create, drive
from tests.support.processes import free_port
from tests.support.server import running_server

S = JobState


class Recorder(LifecycleMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str | None, str, str]] = []

    def transition(self, job: JobRecord, source: JobState | None, target: JobState) -> None:
        self.seen.append((None if source is None else str(source), str(target), job.type))
        super().transition(job, source, target)


@pytest.fixture
def recorded(store: JobStore) -> tuple[JobRepository, Recorder]:
    repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
    recorder = Recorder()
    repo.set_transition_observer(recorder)
    return repo, recorder


async def test_store_counts_jobs_by_state_and_type(store: JobStore) -> None:
    repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
    assert await store.count_by_state_and_type() == {}
    await drive(repo, S.PAUSED)
    await drive(repo, S.COMPLETED, owner=BOB)
    await create(repo, ALICE, type="trade")
    await create(repo, BOB, type="trade")
    assert await store.count_by_state_and_type() == {
        (S.PAUSED, "research"): 1,
        (S.COMPLETED, "research"): 1,
        (S.CREATED, "trade"): 2,
    }


async def test_each_committed_change_is_counted_once(
    recorded: tuple[JobRepository, Recorder],
) -> None:
    repo, recorder = recorded
    job = await create(repo)
    lease = await claim(repo, job.id)
    await repo.update_progress(
        parse_progress({"job_id": job.id, "lease": lease, "progress": 50.0})
    )  # no state change: not a transition
    await repo.complete(parse_complete({"job_id": job.id, "lease": lease, "result": {"ok": True}}))
    held = await create(repo, type="trade")
    await repo.pause(ALICE, held.id)
    await repo.cancel(ALICE, held.id)
    await repo.restart(ALICE, parse_restart({"job_id": held.id}))
    assert recorder.seen == [
        (None, "created", "research"),
        ("created", "running", "research"),
        ("running", "completed", "research"),
        (None, "created", "trade"),
        ("created", "paused", "trade"),
        ("paused", "cancelled", "trade"),
        ("cancelled", "created", "trade"),
    ]
    text = exposition(recorder.families())
    assert 'jobspine_job_transitions_total{from="none",to="created",type="trade"} 1' in text
    assert 'jobspine_job_transitions_total{from="paused",to="cancelled",type="trade"} 1' in text
    assert 'jobspine_job_queue_wait_seconds_count{type="research"} 1' in text
    assert 'jobspine_job_queue_wait_seconds_bucket{type="research",le="+Inf"} 1' in text
    assert 'jobspine_job_run_seconds_count{outcome="completed",type="research"} 1' in text
    assert "# TYPE jobspine_job_run_seconds histogram" in text


async def test_a_refused_change_counts_nothing(recorded: tuple[JobRepository, Recorder]) -> None:
    repo, recorder = recorded
    job = await create(repo)
    with pytest.raises(InvalidTransition):
        await repo.resume(ALICE, job.id)  # created is not paused
    assert recorder.seen == [(None, "created", "research")]


def test_histogram_buckets_are_cumulative() -> None:
    metrics = LifecycleMetrics()
    for seconds in (0.02, 0.2, 7200.0):
        metrics.run_time.observe(seconds, type="t", outcome="failed")
    lines = exposition(metrics.families()).splitlines()
    prefix = 'jobspine_job_run_seconds_bucket{outcome="failed",type="t",le='
    assert f'{prefix}"0.1"}} 1' in lines
    assert f'{prefix}"0.5"}} 2' in lines
    assert f'{prefix}"3600"}} 2' in lines
    assert f'{prefix}"+Inf"}} 3' in lines
    assert 'jobspine_job_run_seconds_count{outcome="failed",type="t"} 3' in lines


class CountingStore:
    def __init__(self) -> None:
        self.calls = Counter[str]()
        self.counts = {(S.CREATED, "research"): 2}

    async def count_by_state_and_type(self) -> dict[tuple[JobState, str], int]:
        self.calls["count"] += 1
        return dict(self.counts)


async def test_the_jobs_gauge_reads_the_store_once_per_second() -> None:
    now = [100.0]
    store = CountingStore()
    gauge = JobsGauge(store, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(5):
        assert await gauge.counts() == {(S.CREATED, "research"): 2}
    assert store.calls["count"] == 1
    now[0] += 0.99
    store.counts = {(S.RUNNING, "research"): 1}
    await gauge.counts()
    assert store.calls["count"] == 1
    now[0] += 0.01
    family = await gauge.family()
    assert store.calls["count"] == 2
    assert 'jobspine_jobs{state="running",type="research"} 1' in exposition([family])


async def test_metrics_port_serves_metrics_alone_on_loopback() -> None:
    port = free_port()
    async with running_server({"METRICS_PORT": str(port)}) as server:
        await create(server.repository, ALICE)
        side = f"http://127.0.0.1:{port}"
        async with server.http.get(f"{side}/metrics") as answer:
            assert answer.status == 200
            text = await answer.text()
        assert 'jobspine_jobs{state="created",type="research"} 1' in text
        assert "jobspine_job_transitions_total" in text
        async with server.http.get(f"{side}/api/jobs") as answer:
            assert answer.status == 404
