"""After Redis lost messages, the latest stored event of each affected job, once more.

Pub/sub is at-most-once, and a client notices a lost event only when a later one of the
same job arrives with a higher ``seq`` than it expects. When the lost events were a job's
last (its ``job:completed``, say), no later one comes. So once Redis works again, the
latest stored event of each job that may have lost messages is sent again: a client that
has it drops it (its ``seq`` is not above the client's last), one that missed only it
applies it, and one that missed more sees the gap and fills it by replay, as the protocol's
replay algorithm says.

- ``to_everyone``: jobs whose events this instance could not publish; through Redis, so
  that the clients of every instance get them.
- ``to_local_watchers``: every job a socket of this instance watches, when this instance's
  listener was not subscribed for a while (it missed what the others published); local only.
  A socket watches a job through the job's room, or through its user's room: for a user
  room, the user's :data:`USER_ROOM_JOBS` newest jobs (the others' resend through Redis may
  have gone out before this instance subscribed again, so it cannot be relied on).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from server.realtime.publisher import SocketPublisher
from server.realtime.rooms import USER_NAMESPACE, job_of_room, user_of_room
from server.realtime.sockets import SocketServer
from server.store.base import JobStore
from server.store.model import JobFilter

log = logging.getLogger(__name__)

#: For a user room a socket of this instance is in, the latest event of this many of the
#: user's newest jobs is sent again: those most likely to have changed while the instance
#: was deaf. An older job that lost its last events shows the gap at its next event, or when
#: the client lists the user's jobs again (at each connect).
USER_ROOM_JOBS = 50


class LatestEventResender:
    def __init__(self, sockets: SocketServer, store: JobStore, publisher: SocketPublisher):
        self._sockets = sockets
        self._store = store
        self._publisher = publisher
        #: Events sent again since the process started.
        self.resent = 0

    async def to_everyone(self, rooms: Iterable[str]) -> None:
        await self._resend(rooms, local_only=False)

    async def to_local_watchers(self) -> None:
        rooms = list(self._sockets.local_rooms(USER_NAMESPACE))
        users = sorted({user for user in map(user_of_room, rooms) if user})
        job_ids = {job_id for job_id in map(job_of_room, rooms) if job_id}
        for user in users:
            page = await self._store.list_jobs(
                JobFilter(), owner=user, limit=USER_ROOM_JOBS, after=None
            )
            job_ids.update(record.id for record in page.items)
        await self._resend_jobs(job_ids, local_only=True)

    async def _resend(self, rooms: Iterable[str], *, local_only: bool) -> None:
        job_ids = {job_id for job_id in map(job_of_room, rooms) if job_id}
        await self._resend_jobs(job_ids, local_only=local_only)

    async def _resend_jobs(self, job_ids: set[str], *, local_only: bool) -> None:
        for job_id in sorted(job_ids):
            job = await self._store.get(job_id)
            if job is None or job.record.seq < 1:
                continue
            read = await self._store.read_stream(job_id, job.record.seq - 1)
            if read is None or not read.events:
                continue
            await self._publisher.resend(read.events[-1], local_only=local_only)
            self.resent += 1
        if job_ids:
            where = "local watchers" if local_only else "every instance"
            log.info("redis: latest event of %d job(s) sent again to %s", len(job_ids), where)


__all__ = ["USER_ROOM_JOBS", "LatestEventResender"]
