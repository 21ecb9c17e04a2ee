"""The fenced right to write one job.

Every call for a job carries its ``job_id`` and ``lease``. The first refusal that means "stop
this job" (``lease_lost``, ``not_found``, ``validation_error``) marks the lease lost for good:
from then on nothing is sent for it, whatever the handler still does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import attrs

from jobspine_shared.errors import STOP_JOB_CODES, ErrorCode
from workers.sdk.backoff import Backoff
from workers.sdk.errors import JobWithdrawn, RpcError, TransportError
from workers.sdk.rpc import RpcCaller

log = logging.getLogger("workers.sdk.lease")

#: Refusals that say "not now" rather than "no": retried by :meth:`Lease.call_reliably`.
TRANSIENT_CODES = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.RATE_LIMITED})


def _ignore(_: object) -> None:
    pass


def _default_backoff() -> Backoff:
    return Backoff(0.2, 5.0)


@attrs.define(eq=False)
class Lease:
    """One job's lease over a worker connection: ``on_lost`` is told once when it is lost,
    ``on_ack`` sees every successful ack, ``retry_backoff`` paces :meth:`call_reliably`."""

    _connection: RpcCaller
    job_id: str = attrs.field(kw_only=True)
    lease: str = attrs.field(kw_only=True)
    _on_lost: Callable[[JobWithdrawn], None] = attrs.field(kw_only=True, default=_ignore)
    _on_ack: Callable[[dict[str, Any]], None] = attrs.field(kw_only=True, default=_ignore)
    _retry_backoff: Callable[[], Backoff] = attrs.field(kw_only=True, default=_default_backoff)
    #: Why the lease is gone, once it is (then nothing more is sent for the job).
    lost: JobWithdrawn | None = attrs.field(init=False, default=None)

    def _lose(self, error: JobWithdrawn) -> None:
        if self.lost is None:
            self.lost = error
            self._on_lost(error)

    def mark_lost(self, error: JobWithdrawn) -> None:
        """The server said the lease is gone without being asked (``lease:revoked``)."""
        self._lose(error)

    async def call(self, event: str, **fields: Any) -> dict[str, Any]:
        """One attempt. Raises :class:`JobWithdrawn` (also when lost before), :class:`RpcError`
        or :class:`TransportError`."""
        if self.lost is not None:
            raise self.lost
        payload = {"job_id": self.job_id, "lease": self.lease, **fields}
        try:
            ack = await self._connection.call(event, payload)
        except RpcError as exc:
            if exc.code in STOP_JOB_CODES:
                lost = JobWithdrawn(exc.code, exc.message, exc.details)
                self._lose(lost)
                raise lost from None
            raise
        self._on_ack(ack)
        return ack

    async def call_reliably(self, event: str, **fields: Any) -> dict[str, Any]:
        """Retry through reconnects and transient refusals until the server answers.

        Used for writes that must not be lost (checkpoint, complete, fail, paused). A retried
        write may already have happened; the caller treats ``lease_lost`` naming the state it
        was moving to as success. Cancel the calling task to give up.
        """
        backoff = self._retry_backoff()
        while True:
            try:
                return await self.call(event, **fields)
            except TransportError as exc:
                log.info("job %s: %s not acknowledged (%s); retrying", self.job_id, event, exc)
                await asyncio.sleep(backoff.next_delay())
                await self._connection.wait_connected()
            except RpcError as exc:
                if exc.code not in TRANSIENT_CODES:
                    raise
                log.info("job %s: %s refused for now (%s); retrying", self.job_id, event, exc)
                await asyncio.sleep(backoff.next_delay())
