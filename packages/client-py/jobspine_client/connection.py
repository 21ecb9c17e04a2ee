"""The client's connection to ``/``: one Socket.IO session after another.

:class:`Connection` connects (a fresh python-socketio client per session, without the
library's own reconnects), reconnects after a loss with exponential backoff and jitter,
refreshes the token before its ``exp`` with ``auth:refresh``, and tells its owner through
callbacks: ``on_session`` (a new session is up: re-sync), ``on_push`` (every server event,
in arrival order), ``on_status``. A string token that the server ends (``session:expired``,
or a reconnect refused as ``unauthorized``) ends the connection with status ``expired``; a
token source is asked again instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jobspine_client.errors import JobspineError, ack_result, connect_refusal
from jobspine_client.socket_session import (
    FATAL_CODES,
    MAX_MESSAGE_BYTES,
    AckMissing,
    NoAck,
    SocketSession,
    default_socket,
    disconnect_quietly,
)
from jobspine_client.tokens import Tokens, refresh_delay
from jobspine_shared.backoff import Backoff

log = logging.getLogger("jobspine_client")

NAMESPACE = "/"


class Status(enum.StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    EXPIRED = "expired"


SocketFactory = Callable[[], Any]


class Session(SocketSession):
    """One session on ``/``: its number, whether the server ended it at its token's expiry,
    and the client's calls (refusals and missing acks as :class:`JobspineError`)."""

    def __init__(self, socket: Any, number: int, timeout_s: float) -> None:
        super().__init__(socket, NAMESPACE)
        self.number = number
        self.timeout_s = timeout_s
        self.expired = False

    async def call(
        self, event: str, payload: Mapping[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """Emit ``event`` and return its ok ack; a refusal raises :class:`JobspineError`,
        no answer (lost connection, timeout) ``unavailable``."""
        try:
            ack = await self.ack(event, payload, timeout_s)
        except AckMissing as missing:
            raise JobspineError("unavailable", _no_ack_message(event, missing, timeout_s)) from None
        return ack_result(event, ack)

    async def call_patiently(self, event: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`call` for the client's own calls (re-sync, gap fill): ``rate_limited``
        waits as long as the server says and asks again, so a re-sync of many watches is
        slowed down, never lost."""
        while True:
            try:
                return await self.call(event, payload, self.timeout_s)
            except JobspineError as exc:
                if exc.code != "rate_limited":
                    raise
                wait_s = exc.details.get("retry_after_s")
                delay = 1.0
                if isinstance(wait_s, int | float) and not isinstance(wait_s, bool):
                    delay = min(float(wait_s), 60.0)
                await asyncio.sleep(delay)  # as the server asked, then again


def _no_ack_message(event: str, missing: AckMissing, timeout_s: float) -> str:
    if missing.why is NoAck.NOT_CONNECTED:
        return f"not connected; {event} not sent"
    if missing.why is NoAck.SEND_FAILED:
        return f"sending {event} failed: {missing.cause}"
    if missing.why is NoAck.LOST:
        return f"{event}: the connection was lost"
    return f"{event}: no ack within {timeout_s}s"


class Connection:
    def __init__(
        self,
        url: str,
        tokens: Tokens,
        *,
        push_events: Iterable[str],
        on_session: Callable[[Session], None],
        on_push: Callable[[Session, str, Any], None],
        on_status: Callable[[Status], None],
        socket_factory: SocketFactory = default_socket,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 10.0,
        ack_timeout_s: float = 10.0,
        transports: list[str] | None = None,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self._push_events = tuple(push_events)
        self._on_session = on_session
        self._on_push = on_push
        self._on_status = on_status
        self._socket_factory = socket_factory
        self._backoff = backoff or Backoff(0.5, 15.0)
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self._transports = transports or ["websocket"]
        self.session: Session | None = None
        self.sessions = 0
        self.refreshes = 0
        #: Set when the connection gave up for good (a fatal refusal, an expired token).
        self.failure: JobspineError | None = None
        self._closing = asyncio.Event()

    async def run(self) -> None:
        """Stay connected until :meth:`close` or a fatal refusal."""
        status = Status.CONNECTING
        while not self._closing.is_set():
            self._on_status(status)
            session: Session | None = None
            try:
                session = await self._open(await self.tokens.get())
            except JobspineError as refusal:
                if refusal.code in FATAL_CODES:
                    self._give_up(refusal)
                    return
                log.warning("connect refused: %s", refusal)
            if session is None:
                await self._pause(self._backoff.next_delay())
                continue
            self._backoff.reset()
            self._on_session(session)
            refreshing = asyncio.create_task(self._refresh(session), name="jobspine token refresh")
            try:
                await session.last_until(self._closing)
            finally:
                refreshing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refreshing
                await self._retire(session)
            if session.expired and not self.tokens.refreshable:
                self._give_up(JobspineError("unauthorized", "the session expired with its token"))
                return
            status = Status.RECONNECTING
            if not session.expired:
                await self._pause(self._backoff.next_delay())

    def _give_up(self, error: JobspineError) -> None:
        self.failure = error
        self._on_status(Status.EXPIRED)

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    async def close(self) -> None:
        self._closing.set()
        if self.session is not None:
            self.session.end()

    async def _open(self, token: str) -> Session | None:
        socket = self._socket_factory()
        session = Session(socket, self.sessions + 1, self.ack_timeout_s)
        refusals: list[Any] = []

        def on_disconnect(*reason: Any) -> None:
            log.debug("session %d ended %r", session.number, reason)
            session.end()

        def on_expired(*_: Any) -> None:
            session.expired = True

        session.on("disconnect", on_disconnect)
        session.on("connect_error", lambda data=None, *_: refusals.append(data))
        session.on("session:expired", on_expired)
        for name in self._push_events:
            session.on(name, self._pusher(session, name))
        connected = await session.connect(
            self.url, token=token, transports=self._transports, timeout_s=self.connect_timeout_s
        )
        if not connected:
            await disconnect_quietly(socket, self.connect_timeout_s)
            for data in refusals:
                refusal = connect_refusal(data)
                if refusal is not None:
                    raise refusal from None
            return None
        self.sessions += 1
        self.session = session
        log.debug("session %d open", session.number)
        return session

    def _pusher(self, session: Session, name: str) -> Callable[..., None]:
        def push(data: Any = None, *_: Any) -> None:
            self._on_push(session, name, data)

        return push

    async def _retire(self, session: Session) -> None:
        session.end()
        if self.session is session:
            self.session = None
        await disconnect_quietly(session.socket, self.connect_timeout_s)

    async def _refresh(self, session: Session) -> None:
        """Before the token's ``exp``: a new one from the source, sent with ``auth:refresh``;
        the session then lives to the new ``exp``. A source giving no newer token is asked
        again a little later; the server ends the session at ``exp`` if none comes."""
        if not self.tokens.refreshable:
            return
        while not session.closed.done():
            current = self.tokens.current
            delay = refresh_delay(current) if current else None
            if delay is None:
                return
            await asyncio.sleep(delay)  # a timer until the refresh is due, not a synchronisation
            fresh = await self.tokens.get()
            old_exp, new_exp = self.tokens.exp(current or ""), self.tokens.exp(fresh)
            if new_exp is None or (old_exp is not None and new_exp <= old_exp):
                remaining = (old_exp or 0) - time.time()
                self.tokens.current = current
                await asyncio.sleep(max(0.05, min(5.0, remaining / 4)))
                continue
            try:
                await session.call("auth:refresh", {"token": fresh}, self.ack_timeout_s)
            except JobspineError as exc:
                log.warning("token refresh refused: %s", exc)
                self.tokens.current = current
                if exc.code in FATAL_CODES:
                    return
                await asyncio.sleep(max(0.05, min(5.0, ((old_exp or 0) - time.time()) / 4)))
                continue
            self.refreshes += 1


__all__ = [
    "MAX_MESSAGE_BYTES",
    "Connection",
    "Session",
    "SocketFactory",
    "Status",
    "default_socket",
]
