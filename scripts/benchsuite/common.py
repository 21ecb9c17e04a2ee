"""What every measure shares: its result line, statistics, tokens, clients and seeded jobs."""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import attrs

from scripts.benchsuite.report import rounded
from scripts.benchsuite.wire import WireClient
from tests.support.processes import token

T = TypeVar("T")

OWNER = "bench-user"


@attrs.define
class Result:
    """One measure of the suite on one store, with the raw libraries' number beside it."""

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

    def fields(self) -> dict[str, Any]:
        """The keys of its JSON line (:func:`scripts.benchsuite.report.emit` adds the rest)."""
        return {
            "measure": self.measure,
            "name": self.name,
            "store": self.store,
            "value": rounded(self.value),
            "unit": self.unit,
            "raw": None if self.raw is None else rounded(self.raw),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "goal": self.goal,
            "met": self.met,
            "params": self.params,
            **({"extra": self.extra} if self.extra else {}),
        }


def ratio(value: float, raw: float | None) -> float | None:
    return None if not raw else value / raw


@attrs.frozen
class Goal:
    """What a result should reach: how its JSON line states it, and whether a value (with
    its ratio to raw) meets it."""

    text: str
    met: Callable[[float, float | None], bool]


def share_of_raw(least: float) -> Goal:
    """At least ``least`` (a fraction) of raw's number."""
    return Goal(f">= {least:.0%} of raw", lambda _, share: share is not None and share >= least)


def times_raw(most: float) -> Goal:
    """At most ``most`` times raw's number."""
    return Goal(f"<= {most:g}x raw", lambda _, times: times is not None and times <= most)


def at_most(limit: float, unit: str, *, what: str = "") -> Goal:
    return Goal(f"{what}<= {limit:g} {unit}", lambda value, _: value <= limit)


def at_least_share(least: float) -> Goal:
    return Goal(f">= {least:.0%}", lambda value, _: value >= least)


@attrs.frozen
class Series:
    """One number of a measure, reported as one :class:`Result` per server (raw's and each
    store's) with the same name, unit and ``params`` (the one dict: the suite adds its
    ``measure_s`` once)."""

    measure: str
    name: str
    unit: str
    params: dict[str, Any]

    def result(
        self,
        store: str,
        value: float,
        raw: float | None,
        goal: Goal | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Result:
        """``store``'s value beside raw's (raw's own row: ``raw`` is its value, ratio 1)."""
        share = ratio(value, raw)
        return Result(
            measure=self.measure,
            name=self.name,
            store=store,
            value=value,
            unit=self.unit,
            raw=raw,
            ratio=share,
            params=self.params,
            goal=None if goal is None else goal.text,
            met=None if goal is None else goal.met(value, share),
            extra=extra or {},
        )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


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
    "Goal",
    "Result",
    "RunningJob",
    "Series",
    "at_least_share",
    "at_most",
    "checked",
    "gather_limited",
    "median",
    "percentile",
    "ratio",
    "running_jobs",
    "share_of_raw",
    "times_raw",
    "user_auth",
    "worker_auth",
]
