"""Publishing after the job's lock: each job's committed events go out in seq order, but
after the lock that ordered their commits is released, so the job's next store write runs
while these events are being published.

The commit core puts each commit's events into its job's *line* while it holds the job's
lock (so the line is in commit order, that is seq order), releases the lock, and then
publishes the batches it put, each when it is at the head of the line (its *turn*). A
caller therefore returns once its own events went out, as before; only the lock is shorter.
A caller cancelled after putting its events (while waiting for its turn, say) leaves them
to a task that publishes them in their turn.

One exception to "put in commit order": a claim commits in the store before its caller
knows the job, so it takes the job's lock after its commit. A change without a lease
(cancel, a pause request) may have committed on the claimed job in between, when it found
the job running. Such a change's batch waits for the claims in flight when it was put that
may have claimed its job (:class:`ClaimsInFlight`: those whose store call is under way and
those that answered with this job, not claims of other jobs), and a claim's batch goes into
its line before the batches of higher seqs still waiting, so ``job:started`` never follows
a later event of its job. A claim cancelled before it took its job's lock leaves its events
to a task that puts and publishes them in their turn.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import attrs

from jobspine_shared.models import JobEvent

#: What a batch carries besides its events (the state change it committed, if any).
Note = TypeVar("Note")


class ClaimsInFlight:
    """Claims between their call and the moment their events are in their job's line, and
    the job each one claimed once its store call answered."""

    def __init__(self) -> None:
        self._started = 0
        #: Each claim in flight, oldest first, and the job it claimed (``None``: its store
        #: call is under way).
        self._running: dict[int, str | None] = {}
        #: Changes waiting: their job, the claims they still wait for, their future.
        self._barriers: list[tuple[str, set[int], asyncio.Future[None]]] = []

    def start(self) -> int:
        """A claim begins; pair with :meth:`finish` (more than once is fine)."""
        self._started += 1
        self._running[self._started] = None
        return self._started

    def claimed(self, number: int, job_id: str) -> None:
        """Claim ``number``'s store call answered with ``job_id``: changes of other jobs no
        longer wait for it."""
        if number in self._running:
            self._running[number] = job_id
            if self._barriers:
                self._settle(number, job_id)

    def finish(self, number: int) -> None:
        """Claim ``number`` put its events into its line, found no job, or failed."""
        if self._running.pop(number, False) is not False and self._barriers:
            self._settle(number, None)

    def barrier(self, job_id: str) -> asyncio.Future[None] | None:
        """Done once every claim in flight now that may have claimed ``job_id`` (its store
        call under way, or answered with ``job_id``) has finished; ``None`` when none is."""
        waits = {n for n, claimed in self._running.items() if claimed is None or claimed == job_id}
        if not waits:
            return None
        barrier = asyncio.get_running_loop().create_future()
        self._barriers.append((job_id, waits, barrier))
        return barrier

    def _settle(self, number: int, claimed: str | None) -> None:
        """Claim ``number`` finished (``claimed`` None) or claimed ``claimed``: the barriers
        it no longer holds up drop it, and those left waiting for none are done."""
        kept: list[tuple[str, set[int], asyncio.Future[None]]] = []
        for job_id, waits, barrier in self._barriers:
            if claimed != job_id:
                waits.discard(number)
            if barrier.done():  # (its waiter was cancelled)
                continue
            if waits:
                kept.append((job_id, waits, barrier))
            else:
                barrier.set_result(None)
        self._barriers = kept

    def __contains__(self, number: object) -> bool:
        """Whether claim ``number`` is in flight still (its events not put)."""
        return number in self._running

    def __len__(self) -> int:
        return len(self._running)


@attrs.define(eq=False)
class _Batch(Generic[Note]):
    events: Sequence[JobEvent]
    note: Note
    #: The task that put it, and publishes it.
    owner: asyncio.Task[object] | None
    #: Done when the batch may go out (the claims it waits for put theirs).
    ready: asyncio.Future[None] | None
    #: Set by the batch before it when the head of the line passes to this one.
    turn: asyncio.Future[None] | None = None
    publishing: bool = False

    @property
    def first_seq(self) -> int:
        return self.events[0].seq


Publish = Callable[[Sequence[JobEvent], Note], Awaitable[None]]


class PublishLines(Generic[Note]):
    """Per job, the batches committed and not yet published, in seq order."""

    def __init__(self, publish: Publish[Note]) -> None:
        self._publish = publish
        self._lines: dict[str, collections.deque[_Batch[Note]]] = {}
        #: Publishing what cancelled callers had put.
        self._left: set[asyncio.Task[None]] = set()

    def put(
        self,
        job_id: str,
        events: Sequence[JobEvent],
        note: Note,
        *,
        ready: asyncio.Future[None] | None = None,
    ) -> None:
        """Queue ``events`` (committed, in seq order) for the current task to publish with
        :meth:`publish_own`; call while holding the job's lock. A batch goes before the
        batches of higher seqs that are waiting still (a claim's, see the module)."""
        if not events:
            return
        batch = _Batch(events, note, asyncio.current_task(), ready)
        line = self._lines.get(job_id)
        if line is None:
            self._lines[job_id] = collections.deque((batch,))
            return
        at = len(line)
        while at and not line[at - 1].publishing and line[at - 1].first_seq > batch.first_seq:
            at -= 1
        line.insert(at, batch)

    async def publish_own(self, job_id: str) -> None:
        """Publish the batches the current task put for ``job_id``, each in its turn. When
        the task is cancelled meanwhile, a task of this object's publishes what is left
        (:meth:`close` waits for it): an event put is an event committed."""
        line = self._lines.get(job_id)
        if line is None:
            return
        me = asyncio.current_task()
        mine = [batch for batch in line if batch.owner is me]
        for at, batch in enumerate(mine):
            try:
                await self._in_turn(job_id, line, batch)
            except asyncio.CancelledError:
                left = asyncio.get_running_loop().create_task(
                    self._publish_left(job_id, line, mine[at:]), name=f"publish-left-{job_id}"
                )
                self._left.add(left)
                left.add_done_callback(self._left.discard)
                raise

    async def _publish_left(
        self, job_id: str, line: collections.deque[_Batch[Note]], batches: list[_Batch[Note]]
    ) -> None:
        for batch in batches:
            await self._in_turn(job_id, line, batch)

    async def _in_turn(
        self, job_id: str, line: collections.deque[_Batch[Note]], batch: _Batch[Note]
    ) -> None:
        """Publish ``batch`` once it may go out and is at the head of its line, then pass the
        head on. Cancelled, the batch stays in the line (to be published again whole: a
        client drops what it has by seq)."""
        if batch.ready is not None and not batch.ready.done():
            await asyncio.shield(batch.ready)  # (a cancelled waiter leaves it to the others)
        while line[0] is not batch:
            batch.turn = asyncio.get_running_loop().create_future()
            await batch.turn
        batch.publishing = True
        try:
            await self._publish(batch.events, batch.note)
        except asyncio.CancelledError:
            batch.publishing = False
            raise
        line.popleft()
        if not line:
            if self._lines.get(job_id) is line:
                del self._lines[job_id]
        elif (head := line[0].turn) is not None and not head.done():
            head.set_result(None)

    async def close(self) -> None:
        """Wait for the publishes that cancelled callers left."""
        while self._left:
            await asyncio.gather(*self._left, return_exceptions=True)

    def pending(self) -> int:
        """Batches put and not published yet."""
        return sum(len(line) for line in self._lines.values())


__all__ = ["ClaimsInFlight", "PublishLines"]
