"""JobRepository: the single entry point for every job operation.

Transports (Socket.IO handlers, REST views) and the supervisor call its methods; they
validate values, authorise the actor, describe the change and let the store apply it
atomically, then hand the committed events to the publisher in seq order per job. The
methods are written in one module per caller over the shared :class:`CommitCore`.
"""

from __future__ import annotations

from server.service.reads import Reads
from server.service.supervision import Supervision
from server.service.user_commands import UserCommands
from server.service.worker_calls import WorkerCalls


class JobRepository(UserCommands, WorkerCalls, Supervision, Reads):
    """User commands, worker calls, supervision and reads over one commit core."""


__all__ = ["JobRepository"]
