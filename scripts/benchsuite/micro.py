"""``scripts/bench micro``: what jobspine adds per worker call, in process.

The suite's rates depend on how busy the machine is; this does not: it times the code
jobspine runs for one ``heartbeat`` call (or ``--event progress`` / ``checkpoint``) on top of
python-socketio (``Dispatcher.dispatch``: identity lookup, expiry check, routing, the socket
guard with its call rate and calls in flight, validation, the repository and the memory
store, the ack and its metrics) with the socket layer replaced by a dict, best of several
runs. ``--limit`` is ``PROGRESS_EVENTS_PER_S`` (0: every report appends its event). Run it on
two checkouts (``git worktree``) to compare versions; under ``valgrind --tool=callgrind``
the difference of two ``--calls`` counts is the instructions per call, whatever the load.
``--event emit`` times one job event's emit to ``--watchers`` sockets instead
(:mod:`scripts.benchsuite.micro_emit`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from scripts.benchsuite import cli
from scripts.benchsuite.micro_emit import per_emit_us
from scripts.benchsuite.report import emit
from server.actors import Actor, Role
from server.auth import Identity, TokenVerifier
from server.commands.create import parse_create
from server.commands.worker import parse_claim
from server.config import JwtSettings, LimitSettings
from server.limits.calls import CallLimits, SocketQuota
from server.metrics import Metrics
from server.realtime.dispatch import Dispatcher, InFlight
from server.realtime.sessions import SocketGuard
from server.realtime.worker_namespace import WorkerHandlers
from server.service import JobRepository, RepositorySettings
from server.store.memory import MemoryJobStore

OWNER = Actor(id="bench-user")
WORKER = Actor(id="bench-worker", role=Role.WORKER)


class _Sockets:
    """What dispatch and the socket guard use of ``SocketServer``, over a dict."""

    guard: SocketGuard | None = None

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self.on_socket_gone: list[Any] = []

    async def identity(self, sid: str, namespace: str) -> Identity | None:
        return self._identity


def _payload(event: str, job_id: str, lease: str, call: int) -> dict[str, Any]:
    """The payload of the ``call``-th call of ``event`` (progress rises, data differs)."""
    if event == "progress":
        return {"job_id": job_id, "lease": lease, "progress": min(100.0, call * 1e-5)}
    if event == "checkpoint":
        return {"job_id": job_id, "lease": lease, "data": {"report": call}}
    return {"job_id": job_id, "lease": lease}


async def _per_call_us(event: str, limit: float, calls: int, runs: int) -> float:
    settings = RepositorySettings(progress_events_per_s=limit)
    repository = JobRepository(MemoryJobStore(backlog_size=200), settings)
    job = (await repository.create(OWNER, parse_create({"type": "bench"}))).job
    claim = await repository.claim(parse_claim({"types": ["bench"]}, default_worker_id=WORKER.id))
    if claim is None or claim.job.id != job.id:
        raise RuntimeError("the claim did not return the job just created")
    identity = Identity(actor=WORKER, expires_at=time.time() + 3600)
    sockets = _Sockets(identity)
    # The guard as served, with a worker rate no loop of this bench reaches.
    limit_settings = LimitSettings(worker_calls_per_s=1e12)
    sockets.guard = SocketGuard(
        sockets,  # type: ignore[arg-type]
        verifier=TokenVerifier(JwtSettings(algorithm="HS256", key="micro-bench-key-" * 2)),
        limits=CallLimits.build(limit_settings),
        quota=SocketQuota(limit_settings),
    )
    dispatcher = Dispatcher(
        namespace="/workers",
        handlers=WorkerHandlers(repository, sockets).table(),  # type: ignore[arg-type]
        sockets=sockets,  # type: ignore[arg-type]
        metrics=Metrics(),
        in_flight=InFlight(),
    )
    payloads = [
        (_payload(event, job.id, claim.lease, run * calls + i),)
        for run in range(runs)
        for i in range(calls)
    ]
    best = float("inf")
    for run in range(runs):
        started = time.perf_counter()
        for args in payloads[run * calls : (run + 1) * calls]:
            ack = await dispatcher.dispatch(event, "sid", args)
        best = min(best, time.perf_counter() - started)
        if not ack["ok"]:
            raise RuntimeError(f"{event} refused: {ack}")
    await repository.close()
    return best / calls * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("micro", __doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--event", choices=("heartbeat", "progress", "checkpoint", "emit"), default="heartbeat"
    )
    parser.add_argument("--limit", type=float, default=0.0, help="PROGRESS_EVENTS_PER_S")
    parser.add_argument(
        "--watchers", type=int, default=1, help="sockets an emit reaches (--event emit)"
    )
    args = parser.parse_args(argv)
    if args.event == "emit":
        return _emit_main(args.calls, args.runs, args.watchers)
    per_call = asyncio.run(_per_call_us(args.event, args.limit, args.calls, args.runs))
    emit(
        "micro",
        {
            "name": f"{args.event}_dispatch_us",
            "store": "memory",
            "value": round(per_call, 2),
            "unit": "us/call",
            "params": {"calls": args.calls, "runs": args.runs, "limit": args.limit},
        },
    )
    print(
        f"{args.event} through Dispatcher.dispatch on the memory store: {per_call:.2f} us per call"
    )
    return 0


def _emit_main(calls: int, runs: int, watchers: int) -> int:
    per_emit = asyncio.run(per_emit_us(calls, runs, watchers))
    params = {"calls": calls, "runs": runs, "watchers": watchers}
    emit(
        "micro",
        {"name": "emit_us", "value": round(per_emit, 2), "unit": "us/emit", "params": params},
    )
    print(
        f"a job event through SocketServer.emit to {watchers} socket(s): {per_emit:.2f} us per emit"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
