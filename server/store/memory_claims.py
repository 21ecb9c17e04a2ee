"""What a claim on the memory store looks at, kept up to date as jobs change: the created
jobs in claim order, and how many jobs of each user are running.

A claim used to read every job the store keeps (finished ones included) to find the
created ones, and every job again to count the running ones of each user for
``MAX_RUNNING_PER_USER``; both grew with the jobs kept, on every claim, empty ones too.
With this index a claim walks the created jobs in claim order and stops at the first it
may take, which is the one the full scan would have picked: the smallest
:func:`server.store.rules.claim_order` among the claimable, matching, uncapped jobs.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterator
from datetime import datetime

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server.store.rules import claim_order

_Key = tuple[int, datetime, str]


class ClaimIndex:
    def __init__(self) -> None:
        #: The created jobs' claim keys, smallest (first to claim) first.
        self._created: list[_Key] = []
        #: Running jobs per user id (users with none are not kept).
        self._running: collections.Counter[str] = collections.Counter()

    def changed(self, before: JobRecord | None, after: JobRecord | None) -> None:
        """A job went from ``before`` to ``after`` (``None``: not in the store)."""
        if (
            before is not None
            and after is not None
            and before.state is JobState.RUNNING
            and after.state is JobState.RUNNING
            and before.user_id == after.user_id
        ):
            return  # a running job's report, heartbeat or checkpoint: the counts stay
        if before is not None:
            if before.state is JobState.CREATED:
                created, key = self._created, claim_order(before)
                at = bisect.bisect_left(created, key)
                assert created[at] == key, "a created job missing from the claim index"
                del created[at]
            elif before.state is JobState.RUNNING:
                self._running[before.user_id] -= 1
                if not self._running[before.user_id]:
                    del self._running[before.user_id]
        if after is not None:
            if after.state is JobState.CREATED:
                bisect.insort(self._created, claim_order(after))
            elif after.state is JobState.RUNNING:
                self._running[after.user_id] += 1

    def created_in_claim_order(self) -> Iterator[str]:
        """The ids of the created jobs, the first to claim first (no job may change while
        the caller walks them)."""
        return (key[2] for key in self._created)

    def users_at(self, max_running: int) -> set[str]:
        """Users with ``max_running`` or more running jobs (none when 0: no cap)."""
        if max_running <= 0:
            return set()
        return {user for user, n in self._running.items() if n >= max_running}


__all__ = ["ClaimIndex"]
