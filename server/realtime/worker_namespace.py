"""Namespace ``/workers`` (role ``worker``): claim jobs and report on them under a lease.

Each handler parses its payload into a command (:mod:`server.commands.worker`), makes one
repository call (which fences the lease and applies the change) and shapes the ack.

Pushes to workers (contract v2, "Workers hear of changes at once") go through rooms, so they
reach a socket on any instance (the Redis client manager carries room emits): a claim that
comes back empty puts the socket in ``idle:<type>`` for each type it asked for (``idle:*``
for any type) and then claims once more (a job created between the two was announced before
the socket was in those rooms), a successful claim takes it out of those and into
``lease:<job_id>``, which the worker's own final call (complete, fail, paused) leaves and a
revocation closes.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobspine_shared.wire import format_time, job_to_wire
from server.actors import Role
from server.commands import worker as commands
from server.realtime.dispatch import Call, Dispatcher, Fields, Handler, NamespaceWiring
from server.realtime.rooms import WORKER_NAMESPACE
from server.realtime.sockets import SocketServer
from server.service import JobRepository

NAMESPACE = WORKER_NAMESPACE
IDLE_PREFIX = "idle:"
ANY_TYPE_ROOM = "idle:*"


def idle_room(job_type: str) -> str:
    return f"{IDLE_PREFIX}{job_type}"


def lease_room(job_id: str) -> str:
    return f"lease:{job_id}"


class SocketWorkerSignals:
    """:class:`server.service.WorkerSignals` over Socket.IO rooms of ``/workers``."""

    def __init__(self, sockets: SocketServer) -> None:
        self._sockets = sockets

    async def jobs_available(self, types: Sequence[str]) -> None:
        rooms = [idle_room(t) for t in types] + [ANY_TYPE_ROOM]
        await self._sockets.emit("jobs:available", {"types": list(types)}, rooms, NAMESPACE)

    async def lease_revoked(self, job_id: str, *, state: str, reason: str) -> None:
        room = lease_room(job_id)
        data = {"job_id": job_id, "state": state, "reason": reason}
        await self._sockets.emit("lease:revoked", data, [room], NAMESPACE)
        await self._sockets.server.close_room(room, namespace=NAMESPACE)

    async def pause_requested(self, job_id: str) -> None:
        data = {"job_id": job_id}
        await self._sockets.emit("job:pause_requested", data, [lease_room(job_id)], NAMESPACE)


class WorkerHandlers:
    def __init__(self, repository: JobRepository, sockets: SocketServer) -> None:
        self._repository = repository
        self._sockets = sockets

    async def _leave_idle(self, sid: str) -> None:
        try:
            rooms = self._sockets.server.rooms(sid, namespace=NAMESPACE)
        except KeyError:
            return
        for room in rooms:
            if isinstance(room, str) and room.startswith(IDLE_PREFIX):
                await self._sockets.leave_room(sid, room, NAMESPACE)

    async def _done_with(self, call: Call) -> None:
        job_id = call.payload.get("job_id")
        if isinstance(job_id, str):
            await self._sockets.leave_room(call.sid, lease_room(job_id), NAMESPACE)

    def table(self) -> dict[str, Handler]:
        return {
            "claim": self.claim,
            "heartbeat": self.heartbeat,
            "progress": self.progress,
            "checkpoint": self.checkpoint,
            "paused": self.paused,
            "complete": self.complete,
            "fail": self.fail,
        }

    async def claim(self, call: Call) -> Fields:
        command = commands.parse_claim(call.payload, default_worker_id=call.actor.id)
        claim = await self._repository.claim(command)
        if claim is None:
            for room in [idle_room(t) for t in command.types] or [ANY_TYPE_ROOM]:
                await self._sockets.enter_room(call.sid, room, NAMESPACE)
            # A job created after the empty claim but before the socket joined its idle rooms
            # was announced to rooms it was not in yet: that push is lost to it. Now that it
            # hears every later announcement, one more claim takes what came in between.
            claim = await self._repository.claim(command)
        if claim is None:
            return {"job": None, "lease": None, "checkpoint": None}
        await self._leave_idle(call.sid)
        await self._sockets.enter_room(call.sid, lease_room(claim.job.id), NAMESPACE)
        return {"job": job_to_wire(claim.job), "lease": claim.lease, "checkpoint": claim.checkpoint}

    async def heartbeat(self, call: Call) -> Fields:
        pause_requested = await self._repository.heartbeat(commands.parse_heartbeat(call.payload))
        return {"pause_requested": pause_requested}

    async def progress(self, call: Call) -> Fields:
        await self._repository.update_progress(commands.parse_progress(call.payload))
        return {}

    async def checkpoint(self, call: Call) -> Fields:
        saved_at = await self._repository.checkpoint(commands.parse_checkpoint(call.payload))
        return {"checkpoint_at": format_time(saved_at)}

    async def paused(self, call: Call) -> Fields:
        await self._repository.paused(commands.parse_paused(call.payload))
        await self._done_with(call)
        return {}

    async def complete(self, call: Call) -> Fields:
        await self._repository.complete(commands.parse_complete(call.payload))
        await self._done_with(call)
        return {}

    async def fail(self, call: Call) -> Fields:
        await self._repository.fail(commands.parse_fail(call.payload))
        await self._done_with(call)
        return {}


def install(wiring: NamespaceWiring) -> Dispatcher:
    handlers = WorkerHandlers(wiring.repository, wiring.sockets).table()
    dispatcher = wiring.serve(NAMESPACE, handlers, roles=(Role.WORKER,))
    wiring.repository.set_worker_signals(SocketWorkerSignals(wiring.sockets))
    return dispatcher


__all__ = [
    "NAMESPACE",
    "SocketWorkerSignals",
    "WorkerHandlers",
    "idle_room",
    "install",
    "lease_room",
]
