"""``scripts/bench micro``: what jobspine adds per heartbeat call, in process.

The suite's rates depend on how busy the machine is; this does not: it times the code
jobspine runs for one ``heartbeat`` call on top of python-socketio (``Dispatcher.dispatch``:
identity lookup, expiry check, routing, validation, the repository and the memory store,
the ack and its metrics) with the socket layer replaced by a dict, best of several runs.
Run it on two checkouts (``git worktree``) to compare versions.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from scripts.benchsuite import cli
from scripts.benchsuite.report import emit
from server.actors import Actor, Role
from server.auth import Identity
from server.commands.create import parse_create
from server.commands.worker import parse_claim
from server.metrics import Metrics
from server.realtime.dispatch import Dispatcher, InFlight
from server.realtime.worker_namespace import WorkerHandlers
from server.service import JobRepository
from server.store.memory import MemoryJobStore

OWNER = Actor(id="bench-user")
WORKER = Actor(id="bench-worker", role=Role.WORKER)


class _Sockets:
    """What dispatch uses of ``SocketServer``, over a dict: the identity, and no
    :class:`~server.realtime.sessions.SocketGuard` (no call limits to ask)."""

    guard = None

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def identity(self, sid: str, namespace: str) -> Identity | None:
        return self._identity


async def _per_call_us(calls: int, runs: int) -> float:
    repository = JobRepository(MemoryJobStore(backlog_size=200))
    job = (await repository.create(OWNER, parse_create({"type": "bench"}))).job
    claim = await repository.claim(parse_claim({"types": ["bench"]}, default_worker_id=WORKER.id))
    if claim is None or claim.job.id != job.id:
        raise RuntimeError("the claim did not return the job just created")
    identity = Identity(actor=WORKER, expires_at=time.time() + 3600)
    sockets = _Sockets(identity)
    dispatcher = Dispatcher(
        namespace="/workers",
        handlers=WorkerHandlers(repository, sockets).table(),  # type: ignore[arg-type]
        sockets=sockets,  # type: ignore[arg-type]
        metrics=Metrics(),
        in_flight=InFlight(),
    )
    args: tuple[Any, ...] = ({"job_id": job.id, "lease": claim.lease},)
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(calls):
            ack = await dispatcher.dispatch("heartbeat", "sid", args)
        best = min(best, time.perf_counter() - started)
        if not ack["ok"]:
            raise RuntimeError(f"heartbeat refused: {ack}")
    return best / calls * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("micro", __doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    per_call = asyncio.run(_per_call_us(args.calls, args.runs))
    emit(
        "micro",
        {
            "name": "heartbeat_dispatch_us",
            "store": "memory",
            "value": round(per_call, 2),
            "unit": "us/call",
            "params": {"calls": args.calls, "runs": args.runs},
        },
    )
    print(f"heartbeat through Dispatcher.dispatch on the memory store: {per_call:.2f} us per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
