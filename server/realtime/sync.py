"""``job:sync``: many replays in one reply and one store read, each slot a replay or a
``not_found`` error, within a bounded reply (:class:`ReplyBudget`: the rest is marked for
another call)."""

from __future__ import annotations

from typing import Any

from server.actors import Actor
from server.commands.user import SyncJobs
from server.errors import NotFound
from server.limits.reply_budget import TRUNCATED_SLOT, ReplyBudget
from server.rendering import replay_to_wire
from server.service import JobRepository


async def sync_results(
    repository: JobRepository, actor: Actor, command: SyncJobs
) -> dict[str, dict[str, Any]]:
    """The ``results`` of a ``job:sync`` ack, keyed like ``command.cursors``."""
    results: dict[str, dict[str, Any]] = {}
    budget = ReplyBudget()
    slots = await repository.replay_slots(actor, command, max_bytes=budget.max_bytes)
    for job_id in command.cursors:
        replay = slots.replays.get(job_id)
        if budget.spent or job_id in slots.unread:
            results[job_id] = dict(TRUNCATED_SLOT)
        elif replay is None:
            results[job_id] = {"error": NotFound().to_wire()}
        else:
            slot = replay_to_wire(replay)
            results[job_id] = slot if budget.fits(slot) else dict(TRUNCATED_SLOT)
    return results


__all__ = ["sync_results"]
