"""The progress gate's trailing event (server/progress_gate.py), driven with an injected clock
and futures the test holds: no real timer is waited for (every window below has closed on the
gate's clock before its timer looks), no sleep.

The rule (docs/protocol.md, "Live progress events are limited per job"): a report held back
within a window is followed by one trailing event with the latest value once the window
closes. A trailing flush takes the held report, writes it, and only then returns (publishing
after the job's lock, server/service/publishing.py, can make it wait for its turn): a report
held meanwhile must get a trailing event of its own.
"""

from __future__ import annotations

import asyncio

from server.progress_gate import ProgressGate
from server.store.progress import ProgressWrite

WITHIN_S = 5.0
JOB = "job-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(progress: float) -> ProgressWrite:
    return ProgressWrite(lease="lease", progress=progress, step=None, with_event=False)


class Repository:
    """What the repository's trailing callback does (core.py ``_flush_held_progress`` inside
    ``_in_order``): take the held report, append its event, then publish it, which waits for
    ``published`` while ``hold_publish`` (its turn behind an earlier batch of the job)."""

    def __init__(self) -> None:
        self.gate: ProgressGate | None = None
        self.trailing: list[float] = []
        self.hold_publish = False
        self.publishing = asyncio.Event()
        self.published = asyncio.Event()
        self.flushed = asyncio.Event()

    async def flush(self, job_id: str) -> None:
        assert self.gate is not None
        held = self.gate.take_held(job_id)
        if held is None:
            return
        self.gate.event_appended(job_id)
        self.trailing.append(held.progress)
        if self.hold_publish:
            self.publishing.set()
            await self.published.wait()
        self.flushed.set()


async def test_a_report_held_while_the_trailing_event_is_published_gets_its_own() -> None:
    clock, repo = Clock(), Repository()
    gate = repo.gate = ProgressGate(10.0, repo.flush, clock=clock)
    gate.event_appended(JOB)  # a live event at t=1000
    gate.update_held(JOB, write(2.0))  # within its window: held, trailing event scheduled
    repo.hold_publish = True
    clock.now += 0.2  # the window has closed: the timer flushes when it runs
    async with asyncio.timeout(WITHIN_S):
        await repo.publishing.wait()  # the trailing event of 2.0 is written, being published
    assert repo.trailing == [2.0]

    # A report within the window the trailing event opened: held.
    assert not gate.admits(JOB)
    gate.update_held(JOB, write(3.0))
    repo.hold_publish = False
    repo.published.set()
    clock.now += 0.2  # its window has closed too

    async def trailing_of_the_latest() -> None:
        while repo.trailing[-1] != 3.0:
            repo.flushed.clear()
            await repo.flushed.wait()

    async with asyncio.timeout(WITHIN_S):
        await trailing_of_the_latest()
    assert repo.trailing == [2.0, 3.0]
    await gate.close()
    assert gate.pending == 0
