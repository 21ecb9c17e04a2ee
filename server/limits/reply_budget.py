"""A byte budget for one reply that gathers many parts (``job:sync``): parts are added while
the budget lasts, the first always (so every call makes progress), the rest are marked
``{"truncated": true}`` for the client to ask again."""

from __future__ import annotations

import json
from typing import Any

#: ``job:sync`` replies stop adding slots past this many bytes of compact JSON.
MAX_SYNC_REPLY_BYTES = 8 * 1024 * 1024

TRUNCATED_SLOT: dict[str, Any] = {"truncated": True}


class ReplyBudget:
    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = MAX_SYNC_REPLY_BYTES if max_bytes is None else max_bytes
        self.used = 0
        self._parts = 0

    @property
    def spent(self) -> bool:
        """Whether no further part fits (after at least one)."""
        return self._parts > 0 and self.used >= self.max_bytes

    def fits(self, part: dict[str, Any]) -> bool:
        """Count ``part``; whether it goes in the reply (the first one always does)."""
        size = len(json.dumps(part, separators=(",", ":"), ensure_ascii=False, default=str))
        if self._parts > 0 and self.used + size > self.max_bytes:
            self.used = self.max_bytes
            return False
        self.used += size
        self._parts += 1
        return True


__all__ = ["MAX_SYNC_REPLY_BYTES", "TRUNCATED_SLOT", "ReplyBudget"]
