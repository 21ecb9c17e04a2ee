"""The PostgreSQL job store and everything only it uses (module map: :mod:`.store`)."""

from __future__ import annotations

from server.store.postgres.store import PostgresJobStore

__all__ = ["PostgresJobStore"]
