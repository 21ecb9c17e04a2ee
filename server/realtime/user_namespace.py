"""Namespace ``/``: users and admins create, watch and steer jobs.

A connecting user joins ``user:<sub>``. Each handler parses its payload into a command
(:mod:`server.commands`, the parsers REST uses too), makes one repository call (which
authorises) and shapes the ack (:mod:`server.rendering`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from jobspine_shared.logcontext import current_context
from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_to_wire
from server import validation
from server.actors import USER_ROLES, Actor
from server.auth import Identity
from server.commands.create import parse_create
from server.commands.user import parse_job_ref, parse_read_stream, parse_restart, parse_sync
from server.limits.refusal import rate_limited
from server.realtime.dispatch import Call, Dispatcher, Fields, Handler, NamespaceWiring
from server.realtime.rooms import JOB_ROOM_PREFIX, USER_NAMESPACE, job_room, user_room
from server.realtime.sockets import SocketServer
from server.realtime.sync import sync_results
from server.rendering import recovery_options_to_wire, replay_to_wire
from server.service import JobRepository

NAMESPACE = USER_NAMESPACE

C = TypeVar("C")
#: A repository call that changes one job: the actor and the parsed command, the job after.
ChangesJob = Callable[[Actor, C], Awaitable[JobRecord]]


class UserHandlers:
    def __init__(self, repository: JobRepository, sockets: SocketServer) -> None:
        self._repository = repository
        self._sockets = sockets

    def table(self) -> dict[str, Handler]:
        return {
            "job:pause": self._job_change(parse_job_ref, self._repository.pause),
            "job:resume": self._job_change(parse_job_ref, self._repository.resume),
            "job:cancel": self._job_change(parse_job_ref, self._repository.cancel),
            "job:restart": self._job_change(parse_restart, self._repository.restart),
            "job:subscribe": self.subscribe,
            "job:unsubscribe": self.unsubscribe,
            "job:sync": self.sync,
            "job:create": self.create,
            "job:recovery": self.recovery,
        }

    def _job_change(self, parse: Callable[[Fields], C], change: ChangesJob[C]) -> Handler:
        """A handler that parses its payload with ``parse``, makes ``change`` and answers the
        job as it now is (pause, resume, cancel, restart)."""

        async def handle(call: Call) -> Fields:
            job = await change(call.actor, parse(call.payload))
            return {"job": job_to_wire(job)}

        return handle

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

    async def recovery(self, call: Call) -> Fields:
        options = await self._repository.recovery_options(call.actor, parse_job_ref(call.payload))
        return {"options": recovery_options_to_wire(options)}


def install(wiring: NamespaceWiring) -> Dispatcher:
    sockets = wiring.sockets

    async def on_admitted(sid: str, identity: Identity) -> None:
        await sockets.enter_room(sid, user_room(identity.actor.id), NAMESPACE)

    handlers = UserHandlers(wiring.repository, sockets).table()
    return wiring.serve(NAMESPACE, handlers, roles=USER_ROLES, on_admitted=on_admitted)


__all__ = ["NAMESPACE", "UserHandlers", "install"]
