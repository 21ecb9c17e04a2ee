"""The retention sweeper (``RETENTION_S``): deletes jobs final for longer than that.

A background task of the web process, started and stopped by the aiohttp lifecycle. Each
tick deletes bounded batches (:data:`BATCH`, at most :data:`MAX_BATCHES_PER_TICK` of them),
so one tick never holds the store long; what is left waits for the next tick. With Postgres
only the instance holding the retention scan lock sweeps
(:mod:`server.store.postgres.scan_lock`, a key of its own), the others stand by. A failing
batch is logged and retried on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from server.scan_gate import AlwaysScan, ScanGate
from server.service import JobRepository

log = logging.getLogger(__name__)

#: Jobs deleted per statement at most.
BATCH = 500
MAX_BATCHES_PER_TICK = 20
#: The retention sweeper's scan lock key (not the supervisor's: both may run at once).
RETENTION_LOCK_KEY = 0x5A0C_7E3B_19D2_4F62


def sweep_interval(retention_s: float) -> float:
    """How often to sweep: a tenth of the retention, between 1 s and 10 min."""
    return min(600.0, max(1.0, retention_s / 10))


class RetentionSweeper:
    def __init__(
        self,
        repository: JobRepository,
        *,
        retention_s: float,
        interval_s: float | None = None,
        gate: ScanGate | None = None,
        on_deleted: Callable[[int], None] = lambda count: None,
    ) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be positive (0 turns retention off)")
        self._repository = repository
        self._retention_s = retention_s
        self._interval_s = sweep_interval(retention_s) if interval_s is None else interval_s
        self._gate: ScanGate = gate or AlwaysScan()
        self._on_deleted = on_deleted
        self.deleted = 0

    async def tick(self) -> int:
        """Delete batches until one comes back short (or the tick's bound); the count."""
        deleted = 0
        for _ in range(MAX_BATCHES_PER_TICK):
            batch = await self._repository.sweep_finished(
                older_than_s=self._retention_s, limit=BATCH
            )
            deleted += len(batch)
            if batch:
                self._on_deleted(len(batch))
            if len(batch) < BATCH:
                break
        self.deleted += deleted
        if deleted:
            log.info("retention: deleted %d job(s) final for over %g s", deleted, self._retention_s)
        return deleted

    async def run(self) -> None:
        """Sweep every interval until cancelled; errors wait for the next tick."""
        try:
            while True:
                if await self._gate.may_scan():
                    try:
                        await self.tick()
                    except Exception:
                        log.exception("retention: a sweep failed")
                await asyncio.sleep(self._interval_s)
        finally:
            with contextlib.suppress(Exception):
                await self._gate.close()


__all__ = ["BATCH", "RETENTION_LOCK_KEY", "RetentionSweeper", "sweep_interval"]
