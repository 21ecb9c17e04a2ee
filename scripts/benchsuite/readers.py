"""Reading clients of a progress load: user sockets subscribed to every job, counting the
``job:progress`` events they receive and timing each against its call's send time.

Used by the fan-out measure (b) and ``scripts/bench backpressure``; both give each call a
``step`` of its own (``s<n>``, maybe padded with spaces) and note its send time under it.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from scripts.benchsuite.common import RunningJob, checked, user_auth
from scripts.benchsuite.wire import WireClient


def step_of(raw: str) -> str:
    """The ``step`` of a raw ``job:progress`` packet without its padding, found without
    parsing the JSON: the load generator reads thousands of these a second and must not
    become what is measured."""
    at = raw.index('"step":') + 7
    start = raw.index('"', at) + 1
    return raw[start : raw.index('"', start)].rstrip()


class ProgressReaders:
    """Counts the progress events ``sockets`` receive; once :attr:`sent` is set (step ->
    send time), also each receipt's latency in seconds."""

    def __init__(self, sockets: list[WireClient]) -> None:
        self.sockets = sockets
        self.received = 0
        self.sent: dict[str, float] | None = None
        self.latencies: list[float] = []
        self._arrived = asyncio.Event()
        self._expected = -1
        for socket in sockets:
            socket.on_event = self._on_event

    @classmethod
    async def subscribed(
        cls, http: aiohttp.ClientSession, url: str, jobs: list[RunningJob], count: int
    ) -> ProgressReaders:
        """``count`` user sockets, each subscribed to every job of ``jobs``."""
        sockets = []
        for _ in range(count):
            socket = await WireClient.connect(http, url, "/", user_auth())
            for job in jobs:
                checked(await socket.call("job:subscribe", {"job_id": job.job_id}), "subscribe")
            sockets.append(socket)
        return cls(sockets)

    def _on_event(self, raw: str) -> None:
        if not raw.startswith('["job:progress"'):
            return
        self.received += 1
        if self.sent is not None:
            sent = self.sent.get(step_of(raw))
            if sent is not None:
                self.latencies.append(time.perf_counter() - sent)
        if self.received == self._expected:
            self._arrived.set()

    async def until(self, total: int, within_s: float) -> None:
        """Until ``total`` events have arrived in all (:class:`TimeoutError` after
        ``within_s``)."""
        self._expected = total
        if self.received >= total:
            return
        self._arrived.clear()
        await asyncio.wait_for(self._arrived.wait(), within_s)

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.close()


__all__ = ["ProgressReaders", "step_of"]
