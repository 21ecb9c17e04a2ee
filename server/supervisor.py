"""The supervisor: finds running jobs whose worker went quiet and recovers them, fails or
retries attempts past their ``timeout_s``, and wakes idle workers for delayed jobs whose
``run_at`` came.

It runs inside the web process as a background task started and stopped by the aiohttp
lifecycle. Each recovery is one conditional change in the store (still running, same lease,
still stale), so a heartbeat landing during the scan wins and several supervisors sharing
one database recover a job once. A failing job or a store outage is logged and retried on
the next tick; only cancellation ends the loop. With a :class:`~server.scan_gate.ScanGate`,
only the instance holding the scan lock scans; the others skip their ticks (``standby``)
and one of them takes over when the holder goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import format_time
from server.scan_gate import AlwaysScan, ScanGate
from server.service import JobRepository
from server.store.model import StoredJob

log = logging.getLogger(__name__)

#: Jobs recovered per tick at most; the rest wait for the next tick.
SCAN_BATCH = 500


@attrs.define(kw_only=True)
class SupervisorStatus:
    """What admins see at ``GET /api/admin/supervisor``."""

    interval_s: float
    heartbeat_timeout_s: float
    running: bool = False
    #: Whether this instance scanned at its last tick (it holds the scan lock).
    scanning: bool = False
    ticks: int = 0
    #: Ticks skipped because another instance holds the scan lock.
    standby: int = 0
    last_run_at: datetime | None = None
    last_duration_ms: float | None = None
    last_scanned: int = 0
    scanned: int = 0
    paused: int = 0
    failed: int = 0
    #: Attempts past their ``timeout_s``: retried or failed.
    timed_out: int = 0
    errors: int = 0
    last_error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["last_run_at"] = format_time(self.last_run_at) if self.last_run_at else None
        data["recovered"] = self.paused + self.failed
        return data


@attrs.frozen(kw_only=True)
class TickReport:
    scanned: int
    paused: int
    failed: int
    errors: int
    timed_out: int = 0


class Supervisor:
    def __init__(
        self, repository: JobRepository, *, interval_s: float, gate: ScanGate | None = None
    ) -> None:
        self._repository = repository
        self._interval_s = interval_s
        self._gate: ScanGate = gate or AlwaysScan()
        self._wakeup = asyncio.Event()
        self.status = SupervisorStatus(
            interval_s=interval_s,
            heartbeat_timeout_s=repository.settings.heartbeat_timeout_s,
        )

    async def tick(self) -> TickReport:
        """One scan: recover every stale job found; one job's error does not stop the rest."""
        started = time.perf_counter()
        try:
            stale = await self._repository.find_stale_jobs(limit=SCAN_BATCH)
        except Exception as exc:
            self._note_error(exc)
            raise
        recovered: list[JobRecord] = []

        def on_recovered(job: StoredJob, record: JobRecord) -> None:
            recovered.append(record)
            log.info(
                "supervisor: job %s stale since %s -> %s",
                record.id,
                job.record.last_heartbeat_at,
                record.state,
            )

        errors = await self._each(stale, self._repository.recover_stale_job, on_recovered)
        paused = sum(1 for record in recovered if record.state is JobState.PAUSED)
        report = TickReport(
            scanned=len(stale), paused=paused, failed=len(recovered) - paused, errors=errors
        )
        self._record(report, time.perf_counter() - started)
        # Timeouts and due jobs after the stale scan is on record: each counts as it goes.
        timed_out, timeout_errors = await self._time_out()
        await self._announce_due()
        return attrs.evolve(report, timed_out=timed_out, errors=errors + timeout_errors)

    async def _time_out(self) -> tuple[int, int]:
        """Fail (or retry) every attempt past its ``timeout_s``; each change is fenced by
        the lease it was found under, so two supervisors act once."""
        try:
            overdue = await self._repository.find_timed_out_jobs(limit=SCAN_BATCH)
        except Exception as exc:
            self._note_error(exc)
            return 0, 1
        before = self.status.timed_out

        def on_timed_out(_: StoredJob, record: JobRecord) -> None:
            self.status.timed_out += 1
            log.info("supervisor: job %s timed out -> %s", record.id, record.state)

        errors = await self._each(overdue, self._repository.time_out_job, on_timed_out)
        return self.status.timed_out - before, errors

    async def _each(
        self,
        jobs: list[StoredJob],
        act: Callable[[StoredJob], Awaitable[JobRecord | None]],
        on_changed: Callable[[StoredJob, JobRecord], None],
    ) -> int:
        """``act`` on every job, ``on_changed`` for each it changed (None: it had moved on);
        a job's error is noted and does not stop the rest. Returns the count of errors."""
        errors = 0
        for job in jobs:
            try:
                changed = await act(job)
            except Exception as exc:
                errors += 1
                self._note_error(exc, job_id=job.record.id)
                continue
            if changed is not None:
                on_changed(job, changed)
        return errors

    async def _announce_due(self) -> None:
        """Wake idle workers for delayed jobs that became due since about the last tick."""
        try:
            await self._repository.announce_due_jobs(within_s=2 * self._interval_s + 1.0)
        except Exception as exc:
            self._note_error(exc)

    def _record(self, report: TickReport, duration_s: float) -> None:
        status = self.status
        status.ticks += 1
        status.last_run_at = datetime.now(UTC)
        status.last_duration_ms = round(duration_s * 1000, 3)
        status.last_scanned = report.scanned
        status.scanned += report.scanned
        status.paused += report.paused
        status.failed += report.failed

    def _note_error(self, exc: Exception, *, job_id: str | None = None) -> None:
        self.status.errors += 1
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        if job_id:
            log.exception("supervisor: recovering job %s failed", job_id)
        else:
            log.exception("supervisor: scan failed")

    def wake(self) -> None:
        """Run the next tick now instead of at the end of the interval."""
        self._wakeup.set()

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled; errors wait for the next tick."""
        self.status.running = True
        try:
            while True:
                self.status.scanning = await self._gate.may_scan()
                if self.status.scanning:
                    with contextlib.suppress(Exception):  # logged and counted by tick()
                        await self.tick()
                else:
                    self.status.standby += 1
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._interval_s)
        finally:
            self.status.running = self.status.scanning = False
            await self._gate.close()
