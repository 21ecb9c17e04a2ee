"""The watchdog of cross-instance delivery: probes the Redis round trip, restarts the listener.

:class:`RedisWatchdog` runs the manager's probe periodically. A listener that missed its probe while
Redis answers is dead or deaf (a known failure mode: the listener task ending after
``listen()`` returned, or blocking on a connection that silently went away), so the watchdog
restarts it. Until a probe succeeds again the instance reports not ready.

The manager it probes is :class:`~server.realtime.redis_manager.JobspineRedisManager`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from server.errors import Unavailable
from server.realtime.redis_manager import PROBE_TIMEOUT_S, JobspineRedisManager

log = logging.getLogger(__name__)

#: How often the watchdog probes the round trip.
PROBE_INTERVAL_S = 1.0
#: A listener still not subscribed after this many failed probes in a row is restarted too.
STUCK_AFTER_FAILED_PROBES = 3


class LossRepair(Protocol):
    """What to do once Redis works again about the messages it lost."""

    async def to_everyone(self, rooms: Iterable[str]) -> None:
        """This instance could not publish the messages for ``rooms``."""

    async def to_local_watchers(self) -> None:
        """This instance's listener missed what others published for a while."""


class RedisWatchdog:
    """Probes the manager's round trip; restarts a dead or deaf listener; says if ready;
    after a loss, has ``repair`` make up for the lost messages once the round trip works."""

    def __init__(
        self,
        manager: JobspineRedisManager,
        *,
        repair: LossRepair | None = None,
        interval_s: float = PROBE_INTERVAL_S,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._manager = manager
        self._repair = repair
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._subscriptions_seen = 0
        self.healthy = False
        self.failures = 0
        self.problem = "not probed yet"

    async def check_once(self) -> bool:
        """One probe; on failure, a restart of the listener when it (not Redis) is at fault."""
        manager = self._manager
        if await manager.probe(timeout_s=self._timeout_s):
            if not self.healthy:
                log.info("redis: round trip ok; ready for cross-instance delivery")
            self.healthy, self.failures, self.problem = True, 0, ""
            await self._repair_losses()
            return True
        was_healthy, self.healthy = self.healthy, False
        self.failures += 1
        if not await manager.outbox.ping():
            self.problem = "Redis is unreachable"
        elif (
            not manager.listener_running
            or manager.subscribed
            or self.failures >= STUCK_AFTER_FAILED_PROBES
        ):
            # Redis answers, but the listener is gone, deaf, or stuck connecting.
            self.problem = "the listener missed its probe"
            log.warning("redis: %s; restarting it", self.problem)
            await manager.restart_listener()
        else:
            self.problem = "the listener is subscribing"
        if was_healthy:
            log.warning("redis: %s; not ready", self.problem)
        return False

    async def _repair_losses(self) -> None:
        """Has ``repair`` make up for what was lost since the last successful probe; when it
        fails (the store is down, say), it tries again after the next successful probe."""
        manager, repair = self._manager, self._repair
        dropped = manager.outbox.take_dropped_rooms()
        seen, self._subscriptions_seen = self._subscriptions_seen, manager.subscriptions
        resubscribed = 0 < seen < manager.subscriptions
        if repair is None:
            return
        try:
            if dropped:
                await repair.to_everyone(dropped)
                dropped = set()
            if resubscribed:
                await repair.to_local_watchers()
        except Exception as exc:
            log.warning("redis: sending the latest events again failed (%s); will retry", exc)
            manager.outbox.remember_dropped(dropped)
            if resubscribed:
                self._subscriptions_seen = seen

    async def run(self) -> None:
        """Probe every ``interval_s`` until cancelled (first once the listener subscribed)."""
        await self._manager.wait_subscribed(self._interval_s)
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("redis watchdog: the check failed")
                self.healthy, self.problem = False, "the check failed"
            await asyncio.sleep(self._interval_s)

    @property
    def trouble(self) -> str | None:
        """Why cross-instance delivery does not work now, or ``None``: the last probe
        failed, or since then the listener lost its subscription or a publish failed (those
        show at once, not at the next probe)."""
        if not self.healthy:
            return self.problem
        if not self._manager.subscribed:
            return "the listener lost its subscription"
        if self._manager.outbox.failing:
            return "cannot publish"
        return None

    async def readiness(self) -> None:
        """For ``/readyz``: returns when there is no :attr:`trouble`, raises otherwise."""
        trouble = self.trouble
        if trouble is not None:
            raise Unavailable(f"redis: {trouble}")


__all__ = ["LossRepair", "RedisWatchdog"]
