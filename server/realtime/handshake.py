"""Admitting a socket to a namespace: verify ``auth.token``, check the role, keep the identity.

A refusal raises :class:`socketio.exceptions.ConnectionRefusedError` whose data is the error
object ``{code, message, details?}`` of :func:`server.error_view.error_view`: the JS client
sees it as ``err.data`` of ``connect_error``. An admitted socket is counted and timed by the
server's :class:`~server.realtime.sessions.SocketGuard` (``MAX_SOCKETS_PER_USER``, the
session's end at ``exp`` plus leeway).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.actors import Role
from server.auth import Identity, TokenVerifier, require_role
from server.error_view import error_view, is_expected
from server.realtime.sockets import ConnectHandler, ConnectionRefused, SocketServer

log = logging.getLogger(__name__)

OnAdmitted = Callable[[str, Identity], Awaitable[None]]


def _token(auth: object) -> object:
    return auth.get("token") if isinstance(auth, dict) else None


def refusal(exc: BaseException) -> ConnectionRefused:
    view = error_view(exc)
    return ConnectionRefused(view.message, view.to_wire())


def gatekeeper(
    *,
    namespace: str,
    roles: tuple[Role, ...],
    verifier: TokenVerifier,
    sockets: SocketServer,
    on_admitted: OnAdmitted | None = None,
) -> ConnectHandler:
    """The connect handler of ``namespace``: admits valid tokens of ``roles``."""

    async def connect(sid: str, environ: dict[str, Any], auth: object) -> None:
        guard = sockets.guard
        try:
            identity = verifier.verify(_token(auth))
            require_role(identity.actor, *roles)
            if guard is not None:
                await guard.admit_socket(sid, namespace, identity)
            await sockets.save_identity(sid, namespace, identity)
            if on_admitted is not None:
                await on_admitted(sid, identity)
        except Exception as exc:
            if guard is not None:
                guard.forget(sid, namespace)  # never connected: no disconnect will follow
            if is_expected(exc):
                log.info("refused a socket on %s: %s", namespace, exc)
            else:
                log.exception("admitting a socket to %s failed", namespace)
            raise refusal(exc) from None

    return connect


__all__ = ["gatekeeper", "refusal"]
