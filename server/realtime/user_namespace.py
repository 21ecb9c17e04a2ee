"""Namespace ``/``: users and admins create, watch and steer jobs.

A connecting user joins ``user:<sub>``. Each handler parses its payload into a command
(:mod:`server.commands`, the parsers REST uses too), makes one repository call (which
authorises) and shapes the ack (:mod:`server.rendering`).
"""

from __future__ import annotations

from jobspine_shared.logcontext import current_context
from jobspine_shared.wire import job_to_wire
from server import validation
from server.actors import USER_ROLES
from server.auth import Identity, TokenVerifier
from server.commands.create import parse_create
from server.commands.user import parse_job_ref, parse_read_stream, parse_restart, parse_sync
from server.limits.refusal import rate_limited
from server.metrics import Metrics
from server.realtime.dispatch import Call, Dispatcher, Fields, Handler, InFlight
from server.realtime.handshake import gatekeeper
from server.realtime.rooms import JOB_ROOM_PREFIX, USER_NAMESPACE, job_room, user_room
from server.realtime.sockets import SocketServer
from server.realtime.sync import sync_results
from server.rendering import recovery_options_to_wire, replay_to_wire
from server.service import JobRepository

NAMESPACE = USER_NAMESPACE


class UserHandlers:
    def __init__(self, repository: JobRepository, sockets: SocketServer) -> None:
        self._repository = repository
        self._sockets = sockets

    def table(self) -> dict[str, Handler]:
        return {
            "job:subscribe": self.subscribe,
            "job:unsubscribe": self.unsubscribe,
            "job:sync": self.sync,
            "job:create": self.create,
            "job:pause": self.pause,
            "job:resume": self.resume,
            "job:cancel": self.cancel,
            "job:restart": self.restart,
            "job:recovery": self.recovery,
        }

    async def subscribe(self, call: Call) -> Fields:
        """Join ``job:<id>`` (before the backlog is read), then answer with the replay."""
        sid, payload = call.sid, call.payload
        joined: list[str] = []

        async def join(job_id: str) -> None:
            room = job_room(job_id)
            if not self._sockets.in_room(sid, room, NAMESPACE):
                self._check_room_quota(sid)
                await self._sockets.enter_room(sid, room, NAMESPACE)
                joined.append(room)

        try:
            replay = await self._repository.subscribe(
                call.actor, parse_read_stream(payload), join=join
            )
        except BaseException:
            for room in joined:
                await self._sockets.leave_room(sid, room, NAMESPACE)
            raise
        return replay_to_wire(replay)

    def _check_room_quota(self, sid: str) -> None:
        """``MAX_SUBSCRIPTIONS_PER_SOCKET``: a socket in that many job rooms joins no more."""
        guard = self._sockets.guard
        if guard is None:
            return
        bound = guard.quota.settings.max_subscriptions_per_socket
        if self._sockets.room_count(sid, NAMESPACE, JOB_ROOM_PREFIX) >= bound:
            raise rate_limited(
                "max_subscriptions_per_socket",
                1.0,
                f"at most {bound} job subscriptions per socket; unsubscribe from some first",
            )

    async def unsubscribe(self, call: Call) -> Fields:
        job_id = validation.job_id(call.payload.get("job_id"))
        await self._sockets.leave_room(call.sid, job_room(job_id), NAMESPACE)
        return {}

    async def sync(self, call: Call) -> Fields:
        results = await sync_results(self._repository, call.actor, parse_sync(call.payload))
        return {"results": results}

    async def create(self, call: Call) -> Fields:
        # Without a correlation_id of its own the job takes this call's request id.
        created = await self._repository.create(
            call.actor,
            parse_create(call.payload),
            request_id=current_context().get("request_id"),
        )
        if created.existing:  # the idempotency key named a job created before
            return {"job": job_to_wire(created.job), "existing": True}
        return {"job": job_to_wire(created.job)}

    async def pause(self, call: Call) -> Fields:
        job = await self._repository.pause(call.actor, parse_job_ref(call.payload))
        return {"job": job_to_wire(job)}

    async def resume(self, call: Call) -> Fields:
        job = await self._repository.resume(call.actor, parse_job_ref(call.payload))
        return {"job": job_to_wire(job)}

    async def cancel(self, call: Call) -> Fields:
        job = await self._repository.cancel(call.actor, parse_job_ref(call.payload))
        return {"job": job_to_wire(job)}

    async def restart(self, call: Call) -> Fields:
        job = await self._repository.restart(call.actor, parse_restart(call.payload))
        return {"job": job_to_wire(job)}

    async def recovery(self, call: Call) -> Fields:
        options = await self._repository.recovery_options(call.actor, parse_job_ref(call.payload))
        return {"options": recovery_options_to_wire(options)}


def install(
    *,
    sockets: SocketServer,
    repository: JobRepository,
    verifier: TokenVerifier,
    metrics: Metrics,
    in_flight: InFlight,
) -> Dispatcher:
    async def on_admitted(sid: str, identity: Identity) -> None:
        await sockets.enter_room(sid, user_room(identity.actor.id), NAMESPACE)

    dispatcher = Dispatcher(
        namespace=NAMESPACE,
        handlers=UserHandlers(repository, sockets).table(),
        sockets=sockets,
        metrics=metrics,
        in_flight=in_flight,
    )
    connect = gatekeeper(
        namespace=NAMESPACE,
        roles=USER_ROLES,
        verifier=verifier,
        sockets=sockets,
        on_admitted=on_admitted,
    )
    sockets.on_connect(NAMESPACE, connect, dispatcher.reserved)
    dispatcher.install()
    return dispatcher


__all__ = ["NAMESPACE", "UserHandlers", "install"]
