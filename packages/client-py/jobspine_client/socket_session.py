"""One Socket.IO session: the core both long-lived connections are built on, the client's
:class:`jobspine_client.connection.Connection` (namespace ``/``) and the worker SDK's
:class:`workers.sdk.rpc.WorkerConnection` (``/workers``).

A session is a fresh python-socketio client without the library's own reconnects (the
connection above it decides what is fatal and when to try again). :meth:`SocketSession.ack`
sends one event and waits for its ack or for the session's end; when no ack comes it raises
:class:`AckMissing` with a :class:`NoAck` reason, which each connection turns into its own
exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import engineio
import socketio

from jobspine_client.engineio_reads import LeanSocketIOClient
from jobspine_shared.packet_json import PacketJson

log = logging.getLogger("jobspine_client")

#: Largest message accepted from the server. Snapshots, replays and a claim's checkpoint (up
#: to the server's ``MAX_CHECKPOINT_BYTES``) can be large; aiohttp's own default (4 MiB)
#: would drop the connection on a larger one, so allow plenty.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Refusals (``connect_error`` codes) that trying again with the same token cannot fix.
FATAL_CODES = frozenset({"unauthorized", "forbidden"})


class SocketClient(Protocol):
    """The subset of ``socketio.AsyncClient`` a session uses (a fake one in unit tests)."""

    def on(self, event: str, handler: Callable[..., Any], namespace: str | None = None) -> Any: ...

    async def connect(self, url: str, **kwargs: Any) -> None: ...

    async def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Callable[..., None] | None = None,
    ) -> None: ...

    async def disconnect(self) -> None: ...


class ClientPacket(socketio.packet.Packet):  # type: ignore[misc]
    """python-socketio's packet with the shared packet codec (orjson, the standard library's
    answers): scoped to the sessions' clients, so other clients keep the library's parser.

    No jobspine event carries binary data (the server closes a connection that sends a
    binary packet), so a packet is not searched for it: data holding ``bytes`` is refused
    by the encoder (``TypeError``) instead of going out as a binary packet."""

    json = PacketJson
    uses_binary_events = False


def default_socket() -> Any:
    """A python-socketio client without its own reconnect loop (the connections have one),
    reading its websocket without a task per message (:mod:`jobspine_client.engineio_reads`)."""
    return LeanSocketIOClient(
        reconnection=False,
        handle_sigint=False,
        serializer=ClientPacket,
        websocket_extra_options={"max_msg_size": MAX_MESSAGE_BYTES},
    )


class NoAck(enum.Enum):
    """Why a call got no ack; the call may or may not have happened."""

    NOT_CONNECTED = "not connected"
    SEND_FAILED = "sending failed"
    LOST = "the connection was lost"
    TIMEOUT = "no ack in time"


class AckMissing(Exception):
    """No ack came for a call: :attr:`why`, and the transport's error when sending failed."""

    def __init__(self, why: NoAck, cause: BaseException | None = None) -> None:
        super().__init__(why.value if cause is None else f"{why.value}: {cause}")
        self.why = why
        self.cause = cause


class AckWaits:
    """The acks a session waits for: one future each, resolved by the ack, or with a
    :class:`NoAck` when the session ends (``LOST``) or the call's time is up (``TIMEOUT``).
    One timer for all of them, set for the earliest deadline: a call costs no timer, no task
    and no ``asyncio.wait`` of its own."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        #: Seconds on any scale (the loop's time unless a test injects its own).
        self._clock = clock or self._loop.time
        #: Each waiting ack's deadline (on the clock), None until its call was sent.
        self._deadlines: dict[asyncio.Future[Any], float | None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @property
    def waiting(self) -> int:
        """How many calls wait for their ack."""
        return len(self._deadlines)

    def open(self) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = self._loop.create_future()
        self._deadlines[ack] = None
        return ack

    def start_clock(self, ack: asyncio.Future[Any], timeout_s: float) -> None:
        """The call was sent: ``ack`` resolves with ``TIMEOUT`` unless answered in time."""
        if ack.done():
            return
        deadline = self._clock() + timeout_s
        self._deadlines[ack] = deadline
        if self._timer is None or deadline < self._timer_at:
            self._arm(deadline)

    def close(self, ack: asyncio.Future[Any]) -> None:
        """No longer waited for (answered, timed out, or the caller was cancelled)."""
        self._deadlines.pop(ack, None)

    def end(self) -> None:
        """The session is over: every waiting call resolves with ``LOST``."""
        self._disarm()
        for ack in self._deadlines:
            if not ack.done():
                ack.set_result(NoAck.LOST)

    def _arm(self, when: float) -> None:
        self._disarm()
        self._timer = self._loop.call_later(max(0.0, when - self._clock()), self.expire_due)
        self._timer_at = when

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def expire_due(self) -> None:
        """Every call whose deadline the clock reached resolves with ``TIMEOUT`` (the timer
        calls this); the timer is set again for the earliest one left."""
        self._disarm()
        now = self._clock()
        later = []
        for ack, deadline in self._deadlines.items():
            if deadline is None or ack.done():
                continue
            if deadline <= now:
                ack.set_result(NoAck.TIMEOUT)
            else:
                later.append(deadline)
        if later:
            self._arm(min(later))


class SocketSession:
    """One live Socket.IO connection; ``closed`` resolves when it ends for any reason."""

    def __init__(
        self, socket: SocketClient, namespace: str, *, acks: AckWaits | None = None
    ) -> None:
        self.socket = socket
        self.namespace = namespace
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: python-socketio's emit is not safe to interleave: sends go one at a time (the
        #: acks are awaited concurrently).
        self._sending = asyncio.Lock()
        self._acks = acks if acks is not None else AckWaits()

    def end(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._acks.end()

    @property
    def waiting_acks(self) -> int:
        """How many calls wait for their ack."""
        return self._acks.waiting

    async def last_until(self, closing: asyncio.Event) -> None:
        """Wait until this session ends or ``closing`` is set, whichever comes first."""
        closing_set = asyncio.ensure_future(closing.wait())
        ends: set[asyncio.Future[Any]] = {self.closed, closing_set}
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing_set.cancel()

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Call ``handler`` for ``event`` on this session's namespace."""
        self.socket.on(event, handler, namespace=self.namespace)

    async def connect(
        self, url: str, *, token: str, transports: Sequence[str] | None, timeout_s: float
    ) -> bool:
        """Connect with ``auth: {token}``; False when the connection could not be made (a
        ``connect_error`` handler registered before says whether the server refused it)."""
        try:
            await self.socket.connect(
                url,
                auth={"token": token},
                namespaces=[self.namespace],
                transports=list(transports) if transports else None,
                wait_timeout=timeout_s,
            )
        except (socketio.exceptions.ConnectionError, engineio.exceptions.EngineIOError, OSError):
            return False
        return True

    async def ack(self, event: str, payload: Mapping[str, Any], timeout_s: float) -> Any:
        """Emit ``event`` and return its ack (the first argument the server acked with);
        :class:`AckMissing` when none comes within ``timeout_s`` or before the session ends."""
        if self.closed.done():
            raise AckMissing(NoAck.NOT_CONNECTED)
        ack = self._acks.open()

        def on_ack(*args: Any) -> None:
            if not ack.done():
                ack.set_result(args[0] if args else None)

        try:
            try:
                async with self._sending:
                    await self.socket.emit(
                        event, dict(payload), namespace=self.namespace, callback=on_ack
                    )
            except (socketio.exceptions.SocketIOError, engineio.exceptions.EngineIOError) as exc:
                raise AckMissing(NoAck.SEND_FAILED, exc) from exc
            self._acks.start_clock(ack, timeout_s)
            answer = await ack
        finally:
            self._acks.close(ack)
        if isinstance(answer, NoAck):
            raise AckMissing(answer)
        return answer


async def disconnect_quietly(socket: SocketClient, timeout_s: float) -> None:
    """Close ``socket``, ignoring its errors; a websocket whose server went away can take
    up to ``timeout_s``."""
    started = time.monotonic()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(socket.disconnect(), timeout_s)
    log.debug("socket closed in %.3fs", time.monotonic() - started)


__all__ = [
    "FATAL_CODES",
    "MAX_MESSAGE_BYTES",
    "AckMissing",
    "AckWaits",
    "NoAck",
    "SocketClient",
    "SocketSession",
    "default_socket",
    "disconnect_quietly",
]
