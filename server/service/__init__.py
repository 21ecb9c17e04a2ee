"""The service layer: :class:`JobRepository` and what it answers.

- :mod:`~server.service.core`: the commit core (per-job lock, flush held progress, apply
  one change, publish its events, signal workers), shared by every caller's module;
- :mod:`~server.service.user_commands`: create, pause, resume, cancel, restart, delete;
- :mod:`~server.service.worker_calls`: claim and the calls under a lease;
- :mod:`~server.service.supervision`: stale and timed-out jobs, due jobs, retention, checks;
- :mod:`~server.service.reads`: jobs, pages, replays, sync slots, checkpoints, audit, stats;
- :mod:`~server.service.answers` (what it returns), :mod:`~server.service.settings`.

Its methods take typed commands (:mod:`server.commands`) or checked ids and return domain
objects; the transports render them (:mod:`server.rendering`).
"""

from __future__ import annotations

from server.service.answers import Created, JobCounts, RecoveryCheck, Replay
from server.service.core import EventPublisher, TransitionObserver, WorkerSignals
from server.service.repository import JobRepository
from server.service.settings import RepositorySettings

__all__ = [
    "Created",
    "EventPublisher",
    "JobCounts",
    "JobRepository",
    "RecoveryCheck",
    "Replay",
    "RepositorySettings",
    "TransitionObserver",
    "WorkerSignals",
]
