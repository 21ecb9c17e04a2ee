"""Namespace ``/workers`` (role ``worker``): claim jobs and report on them under a lease.

Each handler reads its payload fields, makes one repository call (which validates, fences the
lease and applies the change) and shapes the ack.
"""

from __future__ import annotations

from jobspine_shared.wire import format_time, job_to_wire
from server.actors import Role
from server.auth import TokenVerifier
from server.metrics import Metrics
from server.realtime.dispatch import Call, Dispatcher, Fields, Handler, InFlight
from server.realtime.handshake import gatekeeper
from server.realtime.rooms import WORKER_NAMESPACE
from server.realtime.sockets import SocketServer
from server.repository import JobRepository

NAMESPACE = WORKER_NAMESPACE


class WorkerHandlers:
    def __init__(self, repository: JobRepository) -> None:
        self._repository = repository

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
        claim = await self._repository.claim(
            call.actor, types=call.payload.get("types"), worker_id=call.payload.get("worker_id")
        )
        if claim is None:
            return {"job": None, "lease": None, "checkpoint": None}
        return {"job": job_to_wire(claim.job), "lease": claim.lease, "checkpoint": claim.checkpoint}

    async def heartbeat(self, call: Call) -> Fields:
        p = call.payload
        pause_requested = await self._repository.heartbeat(p.get("job_id"), p.get("lease"))
        return {"pause_requested": pause_requested}

    async def progress(self, call: Call) -> Fields:
        p = call.payload
        await self._repository.update_progress(
            p.get("job_id"), p.get("lease"), p.get("progress"), p.get("step")
        )
        return {}

    async def checkpoint(self, call: Call) -> Fields:
        p = call.payload
        saved_at = await self._repository.checkpoint(
            p.get("job_id"), p.get("lease"), p.get("data"), p.get("progress")
        )
        return {"checkpoint_at": format_time(saved_at)}

    async def paused(self, call: Call) -> Fields:
        p = call.payload
        await self._repository.paused(p.get("job_id"), p.get("lease"), p.get("checkpoint"))
        return {}

    async def complete(self, call: Call) -> Fields:
        p = call.payload
        await self._repository.complete(p.get("job_id"), p.get("lease"), p.get("result"))
        return {}

    async def fail(self, call: Call) -> Fields:
        p = call.payload
        await self._repository.fail(p.get("job_id"), p.get("lease"), p.get("error"))
        return {}


def install(
    *,
    sockets: SocketServer,
    repository: JobRepository,
    verifier: TokenVerifier,
    metrics: Metrics,
    in_flight: InFlight,
) -> Dispatcher:
    dispatcher = Dispatcher(
        namespace=NAMESPACE,
        handlers=WorkerHandlers(repository).table(),
        sockets=sockets,
        metrics=metrics,
        in_flight=in_flight,
    )
    connect = gatekeeper(
        namespace=NAMESPACE, roles=(Role.WORKER,), verifier=verifier, sockets=sockets
    )
    sockets.on_connect(NAMESPACE, connect, dispatcher.reserved)
    dispatcher.install()
    return dispatcher


__all__ = ["NAMESPACE", "WorkerHandlers", "install"]
