"""The worker's Socket.IO connection: stays connected across server restarts and turns
Socket.IO acks into results or exceptions.

Reconnection is done here rather than by python-socketio's built-in loop so that the SDK
decides what is fatal (a refused token), what is transient (anything else), and can drop a
connection whose acks stopped arriving. One session (connect, send, wait for the ack) is the
core the Python client uses too, :mod:`jobspine_client.socket_session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from jobspine_client import socket_session
from jobspine_client.socket_session import AckMissing, NoAck, SocketClient
from jobspine_shared.errors import connect_error_body
from workers.sdk.backoff import Backoff
from workers.sdk.errors import AckTimeout, AuthRefused, ConnectionLost, RpcError, TransportError

log = logging.getLogger("workers.sdk.rpc")


class RpcCaller(Protocol):
    """What a job's lease needs from a connection (a fake one in unit tests)."""

    @property
    def connected(self) -> bool: ...

    async def call(
        self, event: str, payload: Mapping[str, Any], *, ack_timeout_s: float | None = None
    ) -> dict[str, Any]: ...

    async def wait_connected(self) -> None: ...


def default_client_factory() -> SocketClient:
    """A python-socketio client without its own reconnect loop (``WorkerConnection`` has one)."""
    client: SocketClient = socket_session.default_socket()
    return client


def parse_ack(event: str, ack: Any) -> dict[str, Any]:
    """``{ok: true, …}`` → the ack; ``{ok: false, error}`` → :class:`RpcError`."""
    if not isinstance(ack, dict) or not isinstance(ack.get("ok"), bool):
        raise RpcError("protocol_error", f"malformed ack to {event!r}: {ack!r:.200}")
    if ack["ok"]:
        return ack
    error = ack.get("error")
    if not isinstance(error, dict):
        raise RpcError("protocol_error", f"refusal of {event!r} without an error object")
    code = error.get("code")
    message = error.get("message")
    details = error.get("details")
    return_code = code if isinstance(code, str) else "unknown"
    raise RpcError(
        return_code,
        message if isinstance(message, str) else return_code,
        details if isinstance(details, dict) else None,
    )


def connect_refusal(data: Any) -> tuple[str, str] | None:
    """``(code, message)`` of a ``connect_error`` payload that carries the contract's
    ``{code, message}`` (directly or under python-socketio's ``data`` key), else None."""
    body = connect_error_body(data)
    if body is None:
        return None
    message = body.get("message")
    return body["code"], message if isinstance(message, str) else body["code"]


class _Session(socket_session.SocketSession):
    """One session on ``/workers``; the SDK's own flag on top of the shared core."""

    def __init__(self, client: SocketClient, namespace: str) -> None:
        super().__init__(client, namespace)
        #: The library reported the disconnect (it then closes the transport itself).
        self.dropped_by_transport = False


TokenSource = Callable[[], str]
"""Gives the token for the next (re)connect: how a worker refreshes its token."""


def token_source(token: str | TokenSource) -> TokenSource:
    """A source for ``token``: a callable as is, a string always the same."""
    if callable(token):
        return token
    return lambda: token


def token_from_file(path: str | Path) -> TokenSource:
    """Reads ``path`` (``JOBSPINE_TOKEN_FILE``) at every (re)connect, so a token rotated in the
    file is used from the next connection on, e.g. after the server's ``session:expired``."""
    file = Path(path)

    def read() -> str:
        return file.read_text(encoding="utf-8").strip()

    return read


class WorkerConnection:
    """A logical connection to the ``/workers`` namespace that outlives server restarts.

    :meth:`run` is a long-lived task: it connects (with backoff), waits for the connection to
    end, and connects again, until :meth:`close`. A refused token ends it with
    :class:`AuthRefused`. :meth:`call` sends one RPC and waits for its ack, failing fast with
    :class:`ConnectionLost` when the connection is (or goes) down, and with :class:`AckTimeout`
    (dropping the connection, so :meth:`run` reconnects) when the ack does not come.

    ``token`` is a string or a :data:`TokenSource` called before every connect: when the
    server ends a session at its token's expiry (``session:expired``, then a disconnect), the
    connection reconnects with the source's current token.
    """

    def __init__(
        self,
        *,
        url: str,
        token: str | TokenSource,
        namespace: str = "/workers",
        ack_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        transports: tuple[str, ...] | None = ("websocket",),
        client_factory: Callable[[], SocketClient] = default_client_factory,
    ) -> None:
        self.url = url
        self._token = token_source(token)
        self.namespace = namespace
        self.ack_timeout_s = ack_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._backoff = backoff or Backoff()
        self._transports = list(transports) if transports else None
        self._client_factory = client_factory
        self._session: _Session | None = None
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._last_connect_error: Any = None
        self._teardowns: set[asyncio.Task[None]] = set()
        #: Server pushes (``jobs:available``, ``lease:revoked`` …) -> callback, registered
        #: on every client this connection opens.
        self._pushes: dict[str, Callable[[Any], None]] = {}
        #: How many sessions were established (1 after the first connect).
        self.sessions = 0

    def on_push(self, event: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(data)`` for each ``event`` the server pushes (from the next
        connection on; register before :meth:`run`)."""
        self._pushes[event] = callback

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and not session.closed.done()

    @property
    def connected_event(self) -> asyncio.Event:
        """Set while connected (read-only use: wait on it, never set it)."""
        return self._connected

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until :meth:`close`; raises :class:`AuthRefused` on a refused token."""
        try:
            while not self._closing.is_set():
                session = await self._open(self._client_factory())
                if session is None:
                    delay = self._backoff.next_delay()
                    log.warning(
                        "cannot connect to %s%s (attempt %d); retrying in %.1fs",
                        self.url,
                        self.namespace,
                        self._backoff.attempt,
                        delay,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
                    continue
                self._backoff.reset()
                try:
                    await session.last_until(self._closing)
                finally:
                    self._retire(session)
                if not self._closing.is_set():
                    log.warning("connection to %s%s lost; reconnecting", self.url, self.namespace)
        finally:
            if self._teardowns:
                await asyncio.wait(set(self._teardowns), timeout=self.connect_timeout_s)

    async def close(self) -> None:
        """Disconnect and make :meth:`run` return."""
        self._closing.set()
        session = self._session
        if session is not None:
            self._end(session)

    async def _open(self, client: SocketClient) -> _Session | None:
        session = _Session(client, self.namespace)
        self._last_connect_error = None

        def on_disconnect(*_: Any) -> None:
            session.dropped_by_transport = True
            self._end(session)

        def on_connect_error(data: Any = None, *_: Any) -> None:
            self._last_connect_error = data

        session.on("disconnect", on_disconnect)
        session.on("connect_error", on_connect_error)
        for event, push in self._pushes.items():
            session.on(event, push)
        connected = await session.connect(
            self.url,
            token=self._token(),
            transports=self._transports,
            timeout_s=self.connect_timeout_s,
        )
        if not connected:
            refusal = connect_refusal(self._last_connect_error)
            if refusal is not None and refusal[0] in socket_session.FATAL_CODES:
                raise AuthRefused(*refusal) from None
            log.debug("connect failed: %r", self._last_connect_error)
            self._tear_down(client)
            return None
        self._session = session
        self.sessions += 1
        self._connected.set()
        log.info("connected to %s%s", self.url, self.namespace)
        return session

    def _end(self, session: _Session) -> None:
        """The session is over: from now on calls fail fast and waiters wait for the next."""
        session.end()
        if self._session is session:
            self._connected.clear()

    def _retire(self, session: _Session) -> None:
        """Forget a finished session and tear its client down in the background: closing a
        websocket whose server went away can take seconds, and must not delay reconnecting."""
        self._end(session)
        if self._session is session:
            self._session = None
        if not session.dropped_by_transport:
            # We are the ones leaving (close, or an ack timeout). Otherwise python-socketio
            # is closing the transport itself, and a second close would wait for nothing.
            self._tear_down(session.socket)

    def _tear_down(self, client: SocketClient) -> None:
        closing = socket_session.disconnect_quietly(client, self.connect_timeout_s)
        task = asyncio.create_task(closing, name="socket teardown")
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    # -- calls -------------------------------------------------------------------------------

    async def call(
        self, event: str, payload: Mapping[str, Any], *, ack_timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send ``event`` and return its ``{ok: true}`` ack.

        Raises :class:`RpcError` for a refusal, :class:`ConnectionLost` or
        :class:`AckTimeout` when there is no answer (the call may or may not have happened).
        """
        session = self._session
        if session is None:
            raise ConnectionLost(f"not connected; cannot send {event!r}")
        wait_s = self.ack_timeout_s if ack_timeout_s is None else ack_timeout_s
        try:
            ack = await session.ack(event, payload, wait_s)
        except AckMissing as missing:
            raise self._no_ack(session, event, missing, wait_s) from missing.cause
        return parse_ack(event, ack)

    def _no_ack(
        self, session: _Session, event: str, missing: AckMissing, wait_s: float
    ) -> TransportError:
        """The SDK's exception for a call without an ack; a failed send or an ack timeout
        also ends the session, so :meth:`run` reconnects."""
        if missing.why is NoAck.NOT_CONNECTED:
            return ConnectionLost(f"not connected; cannot send {event!r}")
        if missing.why is NoAck.LOST:
            return ConnectionLost(f"connection lost while waiting for the ack of {event!r}")
        self._end(session)
        if missing.why is NoAck.SEND_FAILED:
            return ConnectionLost(f"sending {event!r} failed: {missing.cause}")
        log.warning("no ack for %r within %.1fs; reconnecting", event, wait_s)
        return AckTimeout(f"no ack for {event!r} within {wait_s}s")
