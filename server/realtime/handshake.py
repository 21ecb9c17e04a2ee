"""Admitting a socket to a namespace: verify ``auth.token``, check the role, keep the identity.

A refusal raises :class:`socketio.exceptions.ConnectionRefusedError` whose data is the error
object ``{code, message}``: the JS client sees it as ``err.data`` of ``connect_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.actors import Role
from server.auth import Identity, TokenVerifier, require_role
from server.errors import JobspineError
from server.realtime.sockets import ConnectHandler, ConnectionRefused, SocketServer

log = logging.getLogger(__name__)

OnAdmitted = Callable[[str, Identity], Awaitable[None]]


def _token(auth: object) -> object:
    return auth.get("token") if isinstance(auth, dict) else None


def refusal(exc: JobspineError) -> ConnectionRefused:
    wire = exc.to_wire()
    return ConnectionRefused(exc.message, {"code": wire["code"], "message": wire["message"]})


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
        try:
            identity = verifier.verify(_token(auth))
            require_role(identity.actor, *roles)
            await sockets.save_identity(sid, namespace, identity)
            if on_admitted is not None:
                await on_admitted(sid, identity)
        except JobspineError as exc:
            log.info("refused a socket on %s: %s", namespace, exc.message)
            raise refusal(exc) from None
        except Exception:
            log.exception("admitting a socket to %s failed", namespace)
            raise refusal(JobspineError("internal error; the server logged the details")) from None

    return connect


__all__ = ["gatekeeper", "refusal"]
