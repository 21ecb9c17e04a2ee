"""Which web instance's supervisor scans: one at a time over Postgres, with takeover.

Recoveries are conditional changes in the store, so several supervisors scanning together
are safe; this only saves the duplicate scans. The instance holding a session-level
advisory lock scans; the others skip their ticks. The lock lives on a connection of its
own: when its process dies or its connection breaks, Postgres releases it, and the next
instance to tick takes it over (within one ``SUPERVISOR_INTERVAL_S``). Advisory locks are
per database, so deployments on different databases do not share one.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

#: The advisory lock's key (a fixed random 63-bit number: jobspine's supervisor).
SCAN_LOCK_KEY = 0x5A0C_7E3B_19D2_4F61
#: Connecting, and each statement, gives up after this many seconds.
LOCK_TIMEOUT_S = 2.0


class PostgresScanLock:  # a server.scan_gate.ScanGate
    """Holds ``pg_try_advisory_lock(key)`` on a connection of its own while it can."""

    def __init__(self, dsn: str, *, key: int = SCAN_LOCK_KEY) -> None:
        self._dsn = dsn
        self._key = key
        self._connection: Any = None
        self.held = False

    async def may_scan(self) -> bool:
        """Whether we hold the lock: still (our connection answers) or now (we took it)."""
        try:
            if self._connection is None or self._connection.is_closed():
                self.held = False
                self._connection = await asyncpg.connect(self._dsn, timeout=LOCK_TIMEOUT_S)
            if self.held:
                await self._connection.fetchval("SELECT 1", timeout=LOCK_TIMEOUT_S)
                return True
            self.held = bool(
                await self._connection.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self._key, timeout=LOCK_TIMEOUT_S
                )
            )
            if self.held:
                log.info("supervisor: this instance scans (it holds the scan lock)")
        except Exception as exc:  # unreachable, timed out, connection lost: not now
            if self.held:
                log.warning("supervisor: lost the scan lock: %s", exc)
            await self.close()
        return self.held

    async def close(self) -> None:
        """Let the lock go (closing the connection releases it)."""
        connection, self._connection, self.held = self._connection, None, False
        if connection is not None:
            try:
                await connection.close(timeout=LOCK_TIMEOUT_S)
            except Exception:
                connection.terminate()


__all__ = ["LOCK_TIMEOUT_S", "SCAN_LOCK_KEY", "PostgresScanLock"]
