"""Job stores: one interface, an in-memory and a PostgreSQL implementation."""

from __future__ import annotations

from server.store.base import JobStore
from server.store.memory import MemoryJobStore

__all__ = ["JobStore", "MemoryJobStore"]
