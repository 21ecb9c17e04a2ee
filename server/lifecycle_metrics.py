"""Job lifecycle metrics: transitions, queue wait, run time, and jobs by state and type.

The repository reports every committed state change to :meth:`LifecycleMetrics.transition`
from its one commit path (where events are published); nothing else counts transitions.
``jobspine_jobs{state,type}`` is read from the store at scrape time, one query cached for
:data:`JOBS_GAUGE_TTL_S` (on Postgres one ``GROUP BY``), so scrapes never count per job.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from jobspine_shared.models import JobRecord
from jobspine_shared.states import FINAL_STATES, JobState
from server.metrics import Family, Labels
from server.store.base import JobStore

#: The label ``from`` takes for a job's creation (it was in no state before).
NO_STATE = "none"
#: Seconds: from a few milliseconds (a busy queue) to hours (long research jobs).
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400)
RUN_TIME_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 14400, 86400)
JOBS_GAUGE_TTL_S = 1.0


class Histogram:
    """A Prometheus histogram with labels: cumulative buckets, sum and count."""

    def __init__(self, name: str, help: str, buckets: Sequence[float]) -> None:
        self.name, self.help, self.buckets = name, help, tuple(sorted(buckets))
        self._series: dict[Labels, list[float]] = {}  # bucket counts..., +Inf, sum

    def observe(self, value: float, **labels: str) -> None:
        if not math.isfinite(value) or value < 0:
            return
        key = tuple(sorted(labels.items()))
        series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                series[index] += 1
        series[-2] += 1
        series[-1] += value

    def families(self) -> list[Family]:
        bucket = Family(self.name, "histogram", self.help)
        for labels, series in sorted(self._series.items()):
            for bound, count in zip((*self.buckets, math.inf), series, strict=False):
                le = "+Inf" if bound == math.inf else _bound(bound)
                bucket.samples_named[(f"{self.name}_bucket", (*labels, ("le", le)))] = count
            bucket.samples_named[(f"{self.name}_sum", labels)] = series[-1]
            bucket.samples_named[(f"{self.name}_count", labels)] = series[-2]
        return [bucket]


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


class LifecycleMetrics:
    """Counters and histograms of job state changes in this process."""

    def __init__(self) -> None:
        self.transitions: dict[tuple[str, str, str], int] = {}
        self.queue_wait = Histogram(
            "jobspine_job_queue_wait_seconds",
            "Seconds from creation to the first worker's claim.",
            QUEUE_WAIT_BUCKETS,
        )
        self.run_time = Histogram(
            "jobspine_job_run_seconds",
            "Seconds from a worker's claim to the job's final state, by outcome.",
            RUN_TIME_BUCKETS,
        )

    def transition(self, job: JobRecord, source: JobState | None, target: JobState) -> None:
        """``job`` (as committed, in ``target``) left ``source`` (``None``: just created)."""
        key = (NO_STATE if source is None else str(source), str(target), job.type)
        self.transitions[key] = self.transitions.get(key, 0) + 1
        if target is JobState.RUNNING:
            # The first claim only: later ones (after a resume or restart) have no record of
            # when the job went back to the queue.
            waited = _seconds(job.created_at if job.attempt <= 1 else None, job.started_at)
            if waited is not None:
                self.queue_wait.observe(waited, type=job.type)
        elif target in FINAL_STATES and source is JobState.RUNNING:
            ran = _seconds(job.started_at, job.updated_at)
            if ran is not None:
                self.run_time.observe(ran, type=job.type, outcome=str(target))

    def families(self) -> list[Family]:
        counted = Family(
            "jobspine_job_transitions_total",
            "counter",
            "Job state changes committed by this instance ('none' for a creation).",
        )
        for (source, target, job_type), count in sorted(self.transitions.items()):
            counted.set(count, **{"from": source, "to": target, "type": job_type})
        return [counted, *self.queue_wait.families(), *self.run_time.families()]


class JobsGauge:
    """``jobspine_jobs{state,type}`` from one store query, cached for ``ttl_s``."""

    def __init__(
        self,
        store: JobStore,
        *,
        ttl_s: float = JOBS_GAUGE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._ttl_s, self._clock = store, ttl_s, clock
        self._cached: dict[tuple[JobState, str], int] | None = None
        self._read_at = -math.inf
        self._lock = asyncio.Lock()

    async def counts(self) -> dict[tuple[JobState, str], int]:
        async with self._lock:  # concurrent scrapes share one query
            if self._cached is None or self._clock() - self._read_at >= self._ttl_s:
                self._cached = await self._store.count_by_state_and_type()
                self._read_at = self._clock()
            return self._cached

    async def family(self) -> Family:
        family = Family("jobspine_jobs", "gauge", "Jobs by state and type (cached 1 s).")
        for (state, job_type), count in sorted((await self.counts()).items()):
            family.set(count, state=str(state), type=job_type)
        return family


__all__ = ["NO_STATE", "Histogram", "JobsGauge", "LifecycleMetrics"]
