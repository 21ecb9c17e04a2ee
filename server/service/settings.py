"""What the service layer is told by the configuration (:mod:`server.config`)."""

from __future__ import annotations

import attrs

from server.store.base import DEFAULT_IDEMPOTENCY_TTL_S


@attrs.frozen(kw_only=True)
class RepositorySettings:
    max_checkpoint_bytes: int = 1_048_576
    heartbeat_timeout_s: float = 30.0
    max_recovery_attempts: int = 3
    #: Live ``job:progress`` events per job and second (:mod:`server.progress_gate`); 0 for
    #: no limit. The default of the server's configuration (``PROGRESS_EVENTS_PER_S``).
    progress_events_per_s: float = 10.0
    #: How long an idempotency key names its job (``IDEMPOTENCY_TTL_S``).
    idempotency_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S
    #: Running jobs per user at most (``MAX_RUNNING_PER_USER``); 0 for no cap.
    max_running_per_user: int = 0
    #: ``MAX_INPUT_BYTES``: compact UTF-8 JSON of a job's input and of a result.
    max_input_bytes: int = 262_144
    #: ``MAX_ACTIVE_JOBS_PER_USER``: created/running/paused jobs per user; 0 for no cap.
    max_active_jobs_per_user: int = 0


__all__ = ["RepositorySettings"]
