"""The one wrapper every Socket.IO call of both namespaces goes through.

It finds the caller's identity (stored at connect) and refuses calls after the token expired,
routes the event to its handler, checks that the payload is an object, and turns whatever
happens into a flat ack: a domain error into its envelope, anything else into a generic
``internal_error`` (logged here with its traceback, never sent). It also counts calls by
outcome and tracks calls in flight so that shutdown can wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import attrs

from jobspine_shared.logcontext import bind, new_request_id, restore
from server.actors import Actor, Role
from server.auth import TokenVerifier
from server.error_view import error_view, is_expected
from server.errors import BadRequest, Unauthorized, ValidationFailed
from server.metrics import Metrics
from server.realtime import acks
from server.realtime.handshake import OnAdmitted, gatekeeper
from server.realtime.packets import TooDeepPayload
from server.realtime.sessions import REFRESH_EVENT
from server.realtime.sockets import SocketServer
from server.service import JobRepository
from server.validation import MAX_JSON_DEPTH

log = logging.getLogger(__name__)

Fields = dict[str, Any]


@attrs.frozen(kw_only=True)
class Call:
    """One client call: the socket, who is behind it, and the payload object."""

    sid: str
    actor: Actor
    payload: dict[str, Any]


Handler = Callable[[Call], Awaitable[Fields]]


class InFlight:
    """Counts calls being handled; :meth:`drain` waits until none is."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def enter(self) -> None:
        """One more call in flight; pair with :meth:`leave` (``track`` does both)."""
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    def __len__(self) -> int:
        return self._count

    async def drain(self, timeout_s: float) -> bool:
        """Whether every call finished within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


def _payload(args: tuple[object, ...]) -> dict[str, Any]:
    payload = args[0] if args else None
    if isinstance(payload, TooDeepPayload):
        raise ValidationFailed(
            f"the payload nests deeper than {MAX_JSON_DEPTH} levels", details={"field": "payload"}
        )
    if not isinstance(payload, dict):
        raise ValidationFailed("the payload must be a JSON object", details={"field": "payload"})
    return payload


@attrs.define(kw_only=True)
class Dispatcher:
    """Routes the events of one namespace to their handlers."""

    namespace: str
    _handlers: Mapping[str, Handler]
    _sockets: SocketServer
    _metrics: Metrics
    _in_flight: InFlight

    def install(self) -> None:
        self._sockets.on_any_event(self.namespace, self.dispatch)

    async def dispatch(self, event: str, sid: str, args: tuple[object, ...]) -> acks.Ack:
        # bind/restore and enter/leave rather than context managers: this runs once per call.
        # One request id per call, in every log line the call writes (docs/operations.md).
        context = bind(request_id=new_request_id())
        self._in_flight.enter()
        try:
            return await self._answer(event, sid, args)
        finally:
            self._in_flight.leave()
            restore(context)  # (which also drops the caller _call binds)

    async def _answer(self, event: str, sid: str, args: tuple[object, ...]) -> acks.Ack:
        known = event in self._handlers or event == REFRESH_EVENT
        try:
            ack = acks.ok(await self._call(event, sid, args))
        except Exception as exc:
            if not is_expected(exc):
                log.exception("socket call %r on %s failed", event, self.namespace)
            ack = {"ok": False, "error": error_view(exc).to_wire()}
        outcome = "ok" if ack["ok"] else str(ack["error"]["code"])
        self._metrics.socket_call(self.namespace, event if known else "unknown", outcome)
        return ack

    async def _call(self, event: str, sid: str, args: tuple[object, ...]) -> Fields:
        identity = await self._sockets.identity(sid, self.namespace)
        if identity is None:
            raise Unauthorized("this socket is not authenticated")
        if identity.is_expired():
            raise Unauthorized("the token has expired; reconnect with a fresh one")
        actor = identity.actor
        if actor.role is Role.WORKER:
            bind(worker_id=actor.id)
        else:
            bind(user_id=actor.id)
        handler = self._handlers.get(event)
        if handler is None and event != REFRESH_EVENT:
            raise BadRequest(
                f"unknown event {event!r} on namespace {self.namespace}",
                details={"event": event},
            )
        guard = self._sockets.guard
        if guard is None:
            call = Call(sid=sid, actor=identity.actor, payload=_payload(args))
            return await self._handle(handler, call)
        await guard.admit_call(sid, identity.actor)
        try:
            call = Call(sid=sid, actor=identity.actor, payload=_payload(args))
            if handler is None:  # auth:refresh, on both namespaces
                token = call.payload.get("token")
                fresh = await guard.refresh(sid, self.namespace, identity, token)
                return {"exp": int(fresh.expires_at)}
            return await self._handle(handler, call)
        finally:
            guard.call_done(sid)

    async def _handle(self, handler: Handler | None, call: Call) -> Fields:
        if handler is None:
            raise BadRequest("auth:refresh is not available on this server")
        return await handler(call)

    async def reserved(self, sid: str) -> acks.Ack:
        """A client event that reuses a reserved name (``connect``, ``disconnect``)."""
        self._metrics.socket_call(self.namespace, "unknown", "bad_request")
        return acks.error(BadRequest("connect and disconnect are reserved event names"))


@attrs.frozen(kw_only=True)
class NamespaceWiring:
    """What every namespace is served with: the sockets, the one repository, the token
    verifier, the metrics and the count of calls in flight."""

    sockets: SocketServer
    repository: JobRepository
    verifier: TokenVerifier
    metrics: Metrics
    in_flight: InFlight

    def serve(
        self,
        namespace: str,
        handlers: Mapping[str, Handler],
        *,
        roles: tuple[Role, ...],
        on_admitted: OnAdmitted | None = None,
    ) -> Dispatcher:
        """Admit tokens of ``roles`` to ``namespace`` and route its events to ``handlers``."""
        dispatcher = Dispatcher(
            namespace=namespace,
            handlers=handlers,
            sockets=self.sockets,
            metrics=self.metrics,
            in_flight=self.in_flight,
        )
        connect = gatekeeper(
            namespace=namespace,
            roles=roles,
            verifier=self.verifier,
            sockets=self.sockets,
            on_admitted=on_admitted,
        )
        self.sockets.on_connect(namespace, connect, dispatcher.reserved)
        dispatcher.install()
        return dispatcher


__all__ = ["Call", "Dispatcher", "Fields", "Handler", "InFlight", "NamespaceWiring"]
