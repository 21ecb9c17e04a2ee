"""``MAX_ACTIVE_JOBS_PER_USER``: a user with that many jobs in ``created``, ``running`` or
``paused`` creates no more until some finish.

Counted with the store's ``count_active`` (Postgres counts on an index of the active jobs
only, so the cost does not grow with a user's finished jobs). The check and the insert are not
one transaction: creates of one user racing on several instances may pass the bound by the
number racing; that is the documented slack (docs/security.md)."""

from __future__ import annotations

from server.actors import Actor
from server.limits.refusal import rate_limited
from server.store.base import JobStore


async def check_active_jobs(store: JobStore, actor: Actor, max_active: int) -> None:
    """``rate_limited`` (limit ``max_active_jobs_per_user``) when ``actor`` is at the bound;
    ``max_active`` 0 means no bound."""
    if max_active <= 0:
        return
    active = await store.count_active(actor.id)
    if active >= max_active:
        raise rate_limited(
            "max_active_jobs_per_user",
            1.0,
            f"{active} of your jobs are created, running or paused; at most {max_active} "
            "may be; wait for some to finish or cancel some",
        )


__all__ = ["check_active_jobs"]
