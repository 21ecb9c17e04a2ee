"""``python -m scripts.benchsuite.profile --store memory|postgres [--seconds S]``: where the
server's time goes under the heartbeat load of measure a.

Starts jobspine as the suite does, puts the heartbeat load on it, and attaches ``py-spy
record`` (``pip install py-spy``) to the server process meanwhile. Writes the raw collapsed
stacks to ``--out`` and prints the functions with the most samples: the frames themselves
(self) and the frames with everything they call (total).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from scripts.benchsuite.common import RunningJob, checked, running_jobs, worker_auth
from scripts.benchsuite.context import closed_loop
from scripts.benchsuite.database import admin_dsn, scratch_database
from scripts.benchsuite.processes import Server, jobspine, raw
from scripts.benchsuite.wire import WireClient, new_session


async def _load(server: Server, seconds: float, in_flight: int, spy: list[str]) -> float:
    async with new_session() as http:
        if server.name == "raw":
            jobs = [
                RunningJob(job_id=f"00000000-0000-4000-8000-{i:012d}", lease="x")
                for i in range(in_flight)
            ]
        else:
            jobs = await running_jobs(http, server.url, in_flight, type="bench.profile")
        sockets = [
            await WireClient.connect(http, server.url, "/workers", worker_auth()) for _ in range(5)
        ]
        loops: list[Callable[[], Awaitable[object]]] = []
        for i, job in enumerate(jobs):
            socket, payload = sockets[i % 5], {"job_id": job.job_id, "lease": job.lease}

            async def beat(socket: WireClient = socket, payload: dict[str, str] = payload) -> None:
                checked(await socket.call("heartbeat", payload), "heartbeat")

            loops.append(beat)
        recorder = await asyncio.create_subprocess_exec(
            *spy,
            "--pid",
            str(server.pid),
            "--duration",
            str(int(seconds)),
        )
        stats = await closed_loop(loops, seconds=seconds + 1, warmup_s=0.5, server=server)
        await recorder.wait()
        for socket in sockets:
            await socket.close()
        return stats.rate


def summarise(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = [
            f.split(" (", 1)[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self %   function"]
    lines += [f"{100 * n / samples:6.1f}   {f}" for f, n in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * n / samples:6.1f}   {f}" for f, n in total.most_common(top * 2)]
    return "\n".join(lines)


async def _profile(store: str, seconds: float, in_flight: int, out: Path) -> float:
    spy_binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spy = [spy_binary, "record", "--format", "raw", "--rate", "200", "--output", str(out)]
    if store == "raw":
        async with raw() as server:
            return await _load(server, seconds, in_flight, spy)
    if store == "memory":
        async with jobspine("profile-memory") as server:
            return await _load(server, seconds, in_flight, spy)
    async with (
        scratch_database(admin_dsn(), "profile") as dsn,
        jobspine("profile-postgres", database_url=dsn) as server,
    ):
        return await _load(server, seconds, in_flight, spy)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=("raw", "memory", "postgres"), default="memory")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="collapsed stacks (default: a temporary file)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="jobspine-profile-")) / "stacks.txt"
    rate = asyncio.run(_profile(args.store, args.seconds, args.in_flight, out))
    print(f"{args.store}: {rate:,.0f} heartbeats/s under py-spy; stacks in {out}\n")
    print(summarise(out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
