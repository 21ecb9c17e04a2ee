"""What every measure shares: its result line, statistics, tokens, clients and seeded jobs."""

from __future__ import annotations

import asyncio
import datetime
import math
import os
import platform
import statistics
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import attrs

from scripts.benchsuite.processes import SECRET
from scripts.benchsuite.wire import WireClient
from server.auth import mint_token

T = TypeVar("T")

OWNER = "bench-user"


@attrs.define
class Result:
    """One measure of one store, with the raw libraries' number beside it."""

    measure: str
    name: str
    store: str
    value: float
    unit: str
    raw: float | None
    #: ``value / raw`` for rates, ``raw / value`` never: always jobspine over raw.
    ratio: float | None
    params: dict[str, Any]
    goal: str | None = None
    met: bool | None = None
    extra: dict[str, Any] = attrs.Factory(dict)

    def line(self, run: dict[str, Any]) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "name": self.name,
            "store": self.store,
            "value": _round(self.value),
            "unit": self.unit,
            "raw": None if self.raw is None else _round(self.raw),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "goal": self.goal,
            "met": self.met,
            "params": self.params,
            **({"extra": self.extra} if self.extra else {}),
            **run,
        }


def _round(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return round(value, digits)


def ratio(value: float, raw: float | None) -> float | None:
    return None if not raw else value / raw


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for package in ("python-socketio", "python-engineio", "aiohttp", "asyncpg"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **versions,
    }


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def token(sub: str, role: str) -> str:
    return mint_token(SECRET, sub=sub, role=role, ttl_s=6 * 3600)


def user_auth(sub: str = OWNER) -> dict[str, Any]:
    return {"token": token(sub, "user")}


def worker_auth(sub: str = "bench-worker") -> dict[str, Any]:
    return {"token": token(sub, "worker")}


async def gather_limited(
    count: int, make: Callable[[int], Awaitable[T]], *, concurrency: int = 64
) -> list[T]:
    """``make(i)`` for i in range(count), at most ``concurrency`` at a time, in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with gate:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def checked(ack: Any, what: str) -> dict[str, Any]:
    if not isinstance(ack, dict) or not ack.get("ok"):
        raise RuntimeError(f"{what} refused: {ack!r}")
    return ack


@attrs.frozen
class RunningJob:
    job_id: str
    lease: str


async def running_jobs(
    http: aiohttp.ClientSession, url: str, count: int, *, type: str = "bench"
) -> list[RunningJob]:
    """``count`` jobs of :data:`OWNER`, created and claimed over the wire."""
    user = await WireClient.connect(http, url, "/", user_auth())
    worker = await WireClient.connect(http, url, "/workers", worker_auth())
    try:
        ids = []
        for _ in range(count):
            ack = checked(await user.call("job:create", {"type": type, "input": {}}), "create")
            ids.append(ack["job"]["id"])
        jobs = []
        for _ in range(count):
            ack = checked(await worker.call("claim", {"types": [type]}), "claim")
            jobs.append(RunningJob(job_id=ack["job"]["id"], lease=ack["lease"]))
        if sorted(j.job_id for j in jobs) != sorted(ids):
            raise RuntimeError("the claims did not return the jobs just created")
        return jobs
    finally:
        await user.close()
        await worker.close()


__all__ = [
    "OWNER",
    "Result",
    "RunningJob",
    "checked",
    "gather_limited",
    "machine",
    "median",
    "now_iso",
    "percentile",
    "ratio",
    "running_jobs",
    "token",
    "user_auth",
    "worker_auth",
]
