"""Event type names: the Socket.IO event name of each job event is its type."""

from __future__ import annotations

import enum


class EventType(enum.StrEnum):
    CREATED = "job:created"
    STARTED = "job:started"
    PROGRESS = "job:progress"
    CHECKPOINT = "job:checkpoint"
    PAUSE_REQUESTED = "job:pause_requested"
    PAUSED = "job:paused"
    RECOVERY = "job:recovery"
    RESUMED = "job:resumed"
    COMPLETED = "job:completed"
    FAILED = "job:failed"
    CANCELLED = "job:cancelled"
    RESTARTED = "job:restarted"
    RETRYING = "job:retrying"


class PauseReason(enum.StrEnum):
    USER = "user"
    STALLED = "stalled"
