"""``scripts/bench profile --store raw|memory|postgres --load heartbeat|fanout``:
where the server's time goes under the load of measure a (heartbeats) or b (fan-out).

Starts the server as the suite does, puts the load on it, and attaches ``py-spy record``
(``pip install py-spy``) to the server process meanwhile. Writes the raw collapsed stacks to
``--out`` and prints the functions with the most samples: the frames themselves
(self) and the frames with everything they call (total).
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import aiohttp
import attrs

from scripts.benchsuite import cli, fanout
from scripts.benchsuite.common import RunningJob, checked, running_jobs, worker_auth
from scripts.benchsuite.context import FULL, Context, closed_loop
from scripts.benchsuite.servers import Server, jobspine, raw
from scripts.benchsuite.wire import WireClient, new_session
from tests.support.databases import scratch_database

#: Heartbeat calls in flight, as in measure a.
IN_FLIGHT = 50


async def _heartbeats(http: aiohttp.ClientSession, server: Server, seconds: float) -> float:
    if server.name == "raw":
        jobs = [
            RunningJob(job_id=f"00000000-0000-4000-8000-{i:012d}", lease="x")
            for i in range(IN_FLIGHT)
        ]
    else:
        jobs = await running_jobs(http, server.url, IN_FLIGHT, type="bench.profile")
    sockets = [
        await WireClient.connect(http, server.url, "/workers", worker_auth()) for _ in range(5)
    ]
    loops: list[Callable[[], Awaitable[object]]] = []
    for i, job in enumerate(jobs):
        socket, payload = sockets[i % 5], {"job_id": job.job_id, "lease": job.lease}

        async def beat(socket: WireClient = socket, payload: dict[str, str] = payload) -> None:
            checked(await socket.call("heartbeat", payload), "heartbeat")

        loops.append(beat)
    try:
        stats = await closed_loop(loops, seconds=seconds, warmup_s=0.5, server=server)
    finally:
        for socket in sockets:
            await socket.close()
    return stats.rate


async def _fanout(http: aiohttp.ClientSession, server: Server, seconds: float) -> float:
    sizes = attrs.evolve(FULL, seconds=seconds, warmup_s=0.5)
    ctx = Context(sizes=sizes, http=http, raw=server, jobspine={}, admin_dsn="")
    if server.name == "raw":
        jobs = [
            RunningJob(job_id=f"00000000-0000-4000-8000-{i:012d}", lease="x")
            for i in range(sizes.fan_jobs)
        ]
    else:
        jobs = await running_jobs(http, server.url, sizes.fan_jobs, type="bench.profile")
    return (await fanout.max_rate(ctx, server, jobs)).rate


LOADS = {"heartbeat": _heartbeats, "fanout": _fanout}


async def _load(server: Server, load: str, seconds: float, spy: list[str]) -> float:
    """Put ``load`` on ``server`` while py-spy records it for ``seconds``."""
    async with new_session() as http:
        recorder = await asyncio.create_subprocess_exec(
            *spy, "--pid", str(server.pid), "--duration", str(int(seconds))
        )
        try:
            return await LOADS[load](http, server, seconds + 1)
        finally:
            await recorder.wait()


def stacks(collapsed: Path) -> Iterator[tuple[list[str], int]]:
    """Each stack of a py-spy raw file (outermost frame first) and its sample count."""
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack:
            yield stack.split(";"), int(count_text)


def summarise(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for stack, count in stacks(collapsed):
        samples += count
        frames = [f.split(" (", 1)[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self %   function"]
    lines += [f"{100 * n / samples:6.1f}   {f}" for f, n in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * n / samples:6.1f}   {f}" for f, n in total.most_common(top * 2)]
    return "\n".join(lines)


#: A folder in a frame's file path -> the name its self time is counted under.
PACKAGES = {
    "server": "jobspine server",
    "jobspine_shared": "jobspine_shared",
    "socketio": "python-socketio",
    "engineio": "python-engineio",
    "aiohttp": "aiohttp",
    "asyncpg": "asyncpg",
    "asyncio": "asyncio",
    "json": "json",
    "attr": "attrs",
    "cattrs": "cattrs",
    "jwt": "pyjwt",
}


def _package(frame: str) -> str:
    """The package of a py-spy frame ``function (path/file.py:line)``: the innermost folder
    of its path that :data:`PACKAGES` names (py-spy writes paths short, e.g.
    ``socketio/async_server.py``, or whole)."""
    path = frame.rpartition(" (")[2]
    for folder in reversed(path.split("/")[:-1]):
        if folder in PACKAGES:
            return PACKAGES[folder]
    return "other"


def self_by_package(collapsed: Path) -> dict[str, float]:
    """Percent of the samples whose innermost frame is in each package (py-spy raw)."""
    counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for stack, count in stacks(collapsed):
        samples += count
        counts[_package(stack[-1])] += count
    if not samples:
        return {}
    return {name: round(100 * n / samples, 1) for name, n in counts.most_common()}


async def _profile(store: str, load: str, seconds: float, out: Path) -> float:
    spy_binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spy = [spy_binary, "record", "--format", "raw", "--rate", "200", "--output", str(out)]
    if store == "raw":
        async with raw() as server:
            return await _load(server, load, seconds, spy)
    if store == "memory":
        async with jobspine("profile-memory") as server:
            return await _load(server, load, seconds, spy)
    async with (
        scratch_database("bench_profile") as dsn,
        jobspine("profile-postgres", database_url=dsn) as server,
    ):
        return await _load(server, load, seconds, spy)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("profile", __doc__)
    parser.add_argument("--store", choices=("raw", "memory", "postgres"), default="memory")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--load", choices=tuple(LOADS), default="heartbeat")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="collapsed stacks (default: a temporary file)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="jobspine-profile-")) / "stacks.txt"
    rate = asyncio.run(_profile(args.store, args.load, args.seconds, out))
    print(f"{args.store}, {args.load}: {rate:,.0f} calls/s under py-spy; stacks in {out}\n")
    print(summarise(out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
