"""The repository's EventPublisher for Socket.IO: each committed event to its rooms."""

from __future__ import annotations

from collections.abc import Sequence

from jobspine_shared.models import JobEvent
from jobspine_shared.wire import event_to_wire
from server.metrics import Metrics
from server.realtime.rooms import USER_NAMESPACE, job_room, user_room
from server.realtime.sockets import SocketServer


class SocketPublisher:
    """Emits each event under its type to ``job:<id>`` and ``user:<owner>``.

    The rooms go in one emit, so a socket in both receives the event once. The repository
    calls this after the store committed, in seq order per job.
    """

    def __init__(self, sockets: SocketServer, metrics: Metrics) -> None:
        self._sockets = sockets
        self._metrics = metrics

    async def publish(self, events: Sequence[JobEvent]) -> None:
        for event in events:
            await self._emit(event, local_only=False)
            self._metrics.event_emitted(str(event.type))

    async def resend(self, event: JobEvent, *, local_only: bool) -> None:
        """Send a stored event once more (clients drop it when they have it: its seq is not
        above their last), e.g. after Redis lost messages; not counted as emitted."""
        await self._emit(event, local_only=local_only)

    async def _emit(self, event: JobEvent, *, local_only: bool) -> None:
        await self._sockets.emit(
            str(event.type),
            event_to_wire(event),
            [job_room(event.job_id), user_room(event.user_id)],
            USER_NAMESPACE,
            local_only=local_only,
        )


__all__ = ["SocketPublisher"]
