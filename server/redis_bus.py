"""Cross-instance Socket.IO delivery over Redis pub/sub, and a watchdog for its listener.

python-socketio's ``AsyncRedisManager`` already emits to local clients before publishing,
and ignores its own messages. This subclass adds what production needs:

* short Redis timeouts, so an unreachable Redis delays an emit by milliseconds, not
  minutes (local clients are served first either way, and every event is in the store);
* a listener that retries with a bounded backoff instead of up to a minute;
* a round-trip probe: every ``probe_interval_s`` the instance publishes a ping on the
  channel and expects its own listener to hear it. A listener that died silently (a known
  failure mode: ``listen()`` returning after a Redis restart) or hangs on a dead connection
  misses the probe; the instance then reports not ready and restarts the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import socketio

from server.tasks import start_task, stop_task

log = logging.getLogger(__name__)

PROBE_METHOD = "jobspine_probe"
PROBE_MARKER = PROBE_METHOD
MAX_LISTEN_BACKOFF_S = 2.0
REDIS_TIMEOUT_S = 1.0


def _is_probe(message: object) -> bool:
    if isinstance(message, bytes):
        return PROBE_MARKER.encode() in message
    return isinstance(message, str) and PROBE_MARKER in message


class JobspineRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """An ``AsyncRedisManager`` with bounded retries and a self-probe of its listener."""

    connected: bool
    redis: Any
    pubsub: Any
    channel: str
    host_id: str

    def __init__(self, url: str, *, channel: str) -> None:
        super().__init__(
            url,
            channel=channel,
            redis_options={
                "socket_connect_timeout": REDIS_TIMEOUT_S,
                "socket_timeout": None,  # the listener blocks on purpose
                "health_check_interval": 5,
            },
        )
        self._heard: dict[str, asyncio.Future[None]] = {}
        self.last_probe_ok_at: float | None = None
        self.listener_restarts = 0

    # -- probe ------------------------------------------------------------------------------

    async def probe(self, *, timeout_s: float) -> bool:
        """Publish a ping and wait for our own listener to hear it."""
        nonce = uuid.uuid4().hex
        heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._heard[nonce] = heard
        try:
            message = {"method": PROBE_METHOD, "host_id": self.host_id, "nonce": nonce}
            published = await asyncio.wait_for(self._publish_once(message), timeout_s)
            if not published:
                return False
            await asyncio.wait_for(heard, timeout_s)
        except TimeoutError:
            return False
        finally:
            self._heard.pop(nonce, None)
        self.last_probe_ok_at = time.monotonic()
        return True

    async def _publish_once(self, message: dict[str, Any]) -> bool:
        """One publish attempt that reports failure instead of logging it."""
        try:
            if not self.connected:
                self._redis_connect()
            await self.redis.publish(self.channel, json.dumps(message))
        except Exception as exc:  # redis-py raises many kinds; all mean "not now"
            log.debug("redis publish failed: %s", exc)
            self.connected = False
            return False
        return True

    async def _listen(self) -> AsyncIterator[Any]:
        """Messages for python-socketio, minus our probes (resolved here)."""
        async for message in super()._listen():
            if _is_probe(message):
                with contextlib.suppress(ValueError):
                    data = json.loads(message)
                    heard = self._heard.get(data.get("nonce", ""))
                    if heard is not None and not heard.done():
                        heard.set_result(None)
                continue
            yield message

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        """Like python-socketio's, with a bounded backoff so recovery is quick."""
        backoff = 0.1
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed = True
                    backoff = 0.1
                async for message in self.pubsub.listen():
                    yield message
                subscribed = False
            except Exception as exc:
                log.warning("redis listener: %s; retrying in %.1fs", exc, backoff)
                subscribed = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_LISTEN_BACKOFF_S)

    # -- listener lifecycle -------------------------------------------------------------------

    def start_listener(self) -> None:
        self.thread = start_task(self._thread(), name="redis-listener")

    async def stop_listener(self) -> None:
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Task):
            await stop_task(task)
        pubsub = self.pubsub
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        self.connected = False

    async def restart_listener(self) -> None:
        self.listener_restarts += 1
        log.warning("redis listener missed its probe: restarting it")
        await self.stop_listener()
        self.start_listener()

    async def close(self) -> None:
        await self.stop_listener()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()


class RedisWatchdog:
    """Probes the manager's round trip; restarts a deaf listener; reports readiness."""

    def __init__(
        self, manager: JobspineRedisManager, *, interval_s: float = 2.0, timeout_s: float = 1.0
    ) -> None:
        self._manager = manager
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.healthy = False
        self.failures = 0

    async def check_once(self) -> bool:
        ok = await self._manager.probe(timeout_s=self._timeout_s)
        if ok:
            if not self.healthy:
                log.info("redis round trip ok: instance ready for cross-instance delivery")
            self.healthy, self.failures = True, 0
            return True
        self.healthy = False
        self.failures += 1
        if await self._redis_answers():
            # Redis is up but our listener did not hear us: it is dead or deaf.
            await self._manager.restart_listener()
        return False

    async def _redis_answers(self) -> bool:
        try:
            if not self._manager.connected:
                self._manager._redis_connect()
            await asyncio.wait_for(self._manager.redis.ping(), self._timeout_s)
        except Exception:
            self._manager.connected = False
            return False
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("redis watchdog check failed")
                self.healthy = False
            await asyncio.sleep(self._interval_s)
