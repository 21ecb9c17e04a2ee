"""Record real event streams from a real server: ``python -m tests.conformance.record
--store memory|postgres`` rewrites ``tests/conformance/fixtures/<store>.json``.

Each scenario drives one job through the web app on a real port (user calls over Socket.IO,
a worker's RPCs over ``/workers``, the supervisor's own tick) and records, for each step, the
events the user's socket received and the server's snapshot right after them (``GET
/api/jobs/{id}``). A step whose change appends two events in one atomic step (a worker's
``paused`` with a checkpoint, a supervisor's pause with its recovery options) has one
snapshot after both: there is no server state between them. Between the steps nothing else
touches the job, so each snapshot is the state after exactly those events. Every event type
is covered (:func:`covered_types`); clients fold these streams in their conformance tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from server.keys import SUPERVISOR
from server.store.base import JobStore
from server.store.memory import MemoryJobStore
from tests.support.server import (
    LiveServer,
    SocketClient,
    connect_user,
    connect_worker,
    running_server,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STORES = ("memory", "postgres")
USER = "conformance-user"
WORKER = "conformance-worker"
BACKLOG = 200
#: No progress event is held back, no job turns stale by itself, no tick but the recorder's.
SERVER_ENV = {
    "PROGRESS_EVENTS_PER_S": "0",
    "HEARTBEAT_TIMEOUT_S": "60",
    "SUPERVISOR_INTERVAL_S": "3600",
}
STALE_BY_S = 61.0
WAIT_S = 10.0

Step = dict[str, Any]


class ShiftedClock:
    """Real time plus an offset that :meth:`advance` grows (the memory store's heartbeats age
    without waiting, and timestamps still differ between events)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@attrs.define
class Recorder:
    """Drives jobs on ``server`` and records each step's events and snapshot."""

    server: LiveServer
    user: SocketClient
    worker: SocketClient
    age: Callable[[str, float], Awaitable[None]]
    steps: list[Step] = attrs.field(factory=list)
    job_id: str = ""
    seq: int = 0

    async def step(self, action: str, call: Awaitable[Any]) -> Any:
        """Run ``call`` (one user, worker or supervisor action), then record what it did."""
        answer = await call
        status, snapshot = await self.server.rest(
            "GET", f"/api/jobs/{self.job_id}", token=self.server.token(USER)
        )
        assert status == 200, snapshot
        latest = snapshot["seq"]

        def arrived(_: object) -> bool:
            return any(e["seq"] == latest for e in self.user.events.of_job(self.job_id))

        await self.user.events.wait_for(arrived, WAIT_S)
        events = [e for e in self.user.events.of_job(self.job_id) if self.seq < e["seq"] <= latest]
        assert [e["seq"] for e in events] == list(range(self.seq + 1, latest + 1)), events
        self.steps.append({"action": action, "events": events, "snapshot": snapshot})
        self.seq = latest
        return answer

    async def create(self, **fields: Any) -> None:
        payload = {"input": {}, "correlation_id": "conformance", **fields}
        ack = await self.user.ok("job:create", payload)
        self.job_id, self.seq, self.steps = ack["job"]["id"], 0, []
        await self.step("create", asyncio.sleep(0, ack))

    async def user_call(self, event: str, **fields: Any) -> None:
        await self.step(event, self.user.ok(event, {"job_id": self.job_id, **fields}))

    async def claim(self, job_type: str) -> str:
        ack = await self.step("claim", self.worker.ok("claim", {"types": [job_type]}))
        assert ack["job"]["id"] == self.job_id, ack
        lease: str = ack["lease"]
        return lease

    async def rpc(self, event: str, lease: str, **fields: Any) -> None:
        payload = {"job_id": self.job_id, "lease": lease, **fields}
        await self.step(event, self.worker.ok(event, payload))

    async def stall(self) -> None:
        """The job's heartbeats age past the timeout; the supervisor's tick recovers it."""
        await self.age(self.job_id, STALE_BY_S)
        await self.step("supervisor", self.server.app[SUPERVISOR].tick())


async def completed(r: Recorder) -> None:
    """v2 fields, progress, a checkpoint carrying progress, completion."""
    await r.create(type="conf.complete", priority=5, tags=["conformance", "a:b"], timeout_s=600)
    lease = await r.claim("conf.complete")
    await r.rpc("progress", lease, progress=20, step="step 1/3: fetching")
    await r.rpc("checkpoint", lease, data={"completed_steps": 1}, progress=40)
    await r.rpc("checkpoint", lease, data={"completed_steps": 2})
    await r.rpc("progress", lease, progress=80.5, step="step 3/3: writing")
    await r.rpc("complete", lease, result={"answer": 42})


async def user_pause(r: Recorder) -> None:
    """A pause request honoured with a checkpoint, a resume, a resumed claim."""
    await r.create(type="conf.pause", input={"q": "x"})
    lease = await r.claim("conf.pause")
    await r.rpc("progress", lease, progress=30, step="half way")
    await r.user_call("job:pause")
    await r.rpc("paused", lease, checkpoint={"completed_steps": 3})
    await r.user_call("job:resume")
    lease = await r.claim("conf.pause")
    await r.rpc("complete", lease, result=None)


async def held_and_cancelled(r: Recorder) -> None:
    """A created job held, resumed, then cancelled before any claim."""
    await r.create(type="conf.hold")
    await r.user_call("job:pause")
    await r.user_call("job:resume")
    await r.user_call("job:cancel")


async def cancelled_failed_restarted(r: Recorder) -> None:
    """Cancel while running, restart with new input, a final failure, restart again."""
    await r.create(type="conf.restart", input={"v": 1})
    lease = await r.claim("conf.restart")
    await r.rpc("checkpoint", lease, data={"k": 1}, progress=10)
    await r.user_call("job:cancel")
    await r.user_call("job:restart", input={"v": 2})
    lease = await r.claim("conf.restart")
    await r.rpc("fail", lease, error={"message": "bad input", "code": "bad_input"})
    await r.user_call("job:restart")


async def retried(r: Recorder) -> None:
    """A retryable failure with attempts left: job:retrying, then success."""
    retry = {"max_attempts": 3, "backoff_s": 0, "backoff_factor": 2, "max_backoff_s": 60}
    await r.create(type="conf.retry", retry=retry)
    lease = await r.claim("conf.retry")
    await r.rpc("checkpoint", lease, data={"k": 1}, progress=25)
    await r.rpc("fail", lease, error={"message": "upstream busy", "retryable": True})
    lease = await r.claim("conf.retry")
    await r.rpc("complete", lease, result={"tries": 2})


async def supervised(r: Recorder) -> None:
    """The supervisor pauses a stalled job with a checkpoint (job:paused stalled, then
    job:recovery), twice around a resume; a cancel, a restart, and the supervisor's final
    worker_lost failure of an attempt without a checkpoint."""
    await r.create(type="conf.stall")
    lease = await r.claim("conf.stall")
    await r.rpc("checkpoint", lease, data={"k": 1}, progress=50)
    await r.stall()
    await r.user_call("job:resume")
    await r.claim("conf.stall")
    await r.stall()
    await r.user_call("job:cancel")
    await r.user_call("job:restart")
    await r.claim("conf.stall")
    await r.stall()


SCENARIOS: dict[str, Callable[[Recorder], Awaitable[None]]] = {
    "completed": completed,
    "user_pause": user_pause,
    "held_and_cancelled": held_and_cancelled,
    "cancelled_failed_restarted": cancelled_failed_restarted,
    "retried": retried,
    "supervised": supervised,
}


@contextlib.asynccontextmanager
async def opened(
    kind: str, dsn: str | None
) -> AsyncIterator[tuple[JobStore, Callable[[str, float], Awaitable[None]]]]:
    """The ``kind`` store and the way to age one job's heartbeats."""
    if kind == "memory":
        clock = ShiftedClock()

        async def shift(_: str, by_s: float) -> None:
            clock.advance(by_s)

        memory = MemoryJobStore(backlog_size=BACKLOG, clock=clock)
        try:
            yield memory, shift
        finally:
            await memory.close()
        return
    from tests.support.postgres import open_postgres_store
    from tests.support.staleness import RowAging

    assert dsn is not None, "the postgres store needs a database"
    store = await open_postgres_store(dsn, backlog_size=BACKLOG)
    try:
        yield store, RowAging(dsn).age
    finally:
        await store.close()


async def record(kind: str, dsn: str | None = None) -> dict[str, Any]:
    """Every scenario on a fresh server over the ``kind`` store: the fixture document."""
    streams = []
    async with opened(kind, dsn) as (store, age), running_server(SERVER_ENV, store) as server:
        user = await connect_user(server, USER)
        worker = await connect_worker(server, WORKER)
        for name, scenario in SCENARIOS.items():
            recorder = Recorder(server=server, user=user, worker=worker, age=age)
            await scenario(recorder)
            streams.append(
                {"name": name, "doc": (scenario.__doc__ or "").strip(), "steps": recorder.steps}
            )
    return {"store": kind, "backlog_size": BACKLOG, "server_env": SERVER_ENV, "streams": streams}


def covered_types(document: dict[str, Any]) -> set[str]:
    return {e["type"] for s in document["streams"] for step in s["steps"] for e in step["events"]}


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def normalised(document: Any) -> Any:
    """``document`` without what differs from one recording to the next: job ids and epochs
    become ``<job:N>``/``<epoch:N>`` in order of appearance, times ``<time>``."""
    names: dict[str, str] = {}

    def name(value: str, kind: str) -> str:
        return names.setdefault(
            value, f"<{kind}:{sum(v.startswith(f'<{kind}') for v in names.values())}>"
        )

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items() if k != "store"}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            if key in ("id", "job_id", "parent_id"):
                return name(value, "job")
            if key == "epoch":
                return name(value, "epoch")
            if _TIME.match(value):
                return "<time>"
        return value

    return walk(document)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


async def record_postgres() -> dict[str, Any]:
    """On a fresh database cloned from the migrated template, dropped afterwards."""
    from tests.support.postgres import build_template, create_database, drop_database, dsn_for

    template = await build_template()
    name = f"jobspine_test_conformance_{uuid.uuid4().hex[:8]}"
    await create_database(name, template)
    try:
        return await record("postgres", dsn_for(name))
    finally:
        await drop_database(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=STORES, required=True)
    args = parser.parse_args(argv)
    document = asyncio.run(record("memory") if args.store == "memory" else record_postgres())
    path = FIXTURES / f"{args.store}.json"
    path.write_text(render(document))
    print(
        f"wrote {path}: {len(document['streams'])} streams,"
        f" types {', '.join(sorted(covered_types(document)))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
