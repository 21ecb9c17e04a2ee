"""Whether this instance's supervisor (or retention sweeper) scans now.

With one instance (the memory store) it always does (:class:`AlwaysScan`); over Postgres one
instance at a time does, the holder of an advisory lock
(:class:`server.store.postgres.scan_lock.PostgresScanLock`).
"""

from __future__ import annotations

from typing import Protocol


class ScanGate(Protocol):
    async def may_scan(self) -> bool:
        """Whether this instance's supervisor should scan now."""

    async def close(self) -> None: ...


class AlwaysScan:
    """A single instance (the in-memory store): it always scans."""

    async def may_scan(self) -> bool:
        return True

    async def close(self) -> None:
        return None


__all__ = ["AlwaysScan", "ScanGate"]
