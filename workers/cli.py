"""``python -m workers``: run the example workers, configured from the environment.

Configuration errors print one line naming the variable and exit with status 2; a refused
token or another fatal worker error exits with 1; a graceful stop (SIGTERM/SIGINT) exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import attrs

from jobspine_shared.event_loop import EVENT_LOOPS, event_loop_factory, uvloop_installed
from jobspine_shared.logcontext import configure_from_env
from workers.examples import EXAMPLE_HANDLERS
from workers.sdk.config import WorkerConfig
from workers.sdk.rpc import token_from_file
from workers.sdk.worker import Worker, WorkerStopped

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TYPES = "research,trade,analysis"
MAX_CONCURRENCY = 1000

log = logging.getLogger("workers")


class EnvError(ValueError):
    """A variable has a bad value; the message names it."""


@attrs.frozen(kw_only=True)
class WorkerSettings:
    config: WorkerConfig
    types: tuple[str, ...]
    #: ``EVENT_LOOP``, as for the web process: uvloop when installed (``auto``).
    event_loop: str = "auto"


def _raw(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable's value, stripped; ``default`` when it is unset or blank (as the web
    process reads its own variables, so ``WORKER_TYPES=`` in a ``.env`` file means unset)."""
    return env.get(name, "").strip() or default


def _url(env: Mapping[str, str]) -> str:
    value = _raw(env, "JOBSPINE_URL", DEFAULT_URL)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EnvError(f"JOBSPINE_URL: must be an http:// or https:// URL, got {value!r}")
    return value


def _token(env: Mapping[str, str]) -> str | Callable[[], str]:
    """``JOBSPINE_TOKEN_FILE`` (read at every reconnect: a rotated token is picked up) or
    ``JOBSPINE_TOKEN``."""
    path = _raw(env, "JOBSPINE_TOKEN_FILE", "")
    if path:
        if not os.path.isfile(path):
            raise EnvError(f"JOBSPINE_TOKEN_FILE: no such file: {path!r}")
        return token_from_file(path)
    value = _raw(env, "JOBSPINE_TOKEN", "")
    if not value:
        raise EnvError(
            "JOBSPINE_TOKEN: required: a worker JWT (role worker), or JOBSPINE_TOKEN_FILE"
        )
    return value


def _types(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _raw(env, "WORKER_TYPES", DEFAULT_TYPES)
    names = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    if not names:
        raise EnvError("WORKER_TYPES: must name at least one job type")
    unknown = [t for t in names if t not in EXAMPLE_HANDLERS]
    if unknown:
        known = ", ".join(sorted(EXAMPLE_HANDLERS))
        raise EnvError(f"WORKER_TYPES: unknown type(s) {', '.join(unknown)} (known: {known})")
    return names


def _concurrency(env: Mapping[str, str]) -> int:
    raw = _raw(env, "WORKER_CONCURRENCY", "4")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        raise EnvError(
            f"WORKER_CONCURRENCY: must be an integer from 1 to {MAX_CONCURRENCY}, got {raw!r}"
        )
    return value


def _seconds(env: Mapping[str, str], name: str, default: str) -> float:
    raw = _raw(env, name, default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise EnvError(f"{name}: must be a positive number of seconds, got {raw!r}")
    return value


def _heartbeat(env: Mapping[str, str]) -> float:
    return _seconds(env, "WORKER_HEARTBEAT_S", "5")


def _event_loop(env: Mapping[str, str]) -> str:
    value = _raw(env, "EVENT_LOOP", "auto").lower()
    if value not in EVENT_LOOPS:
        raise EnvError(f"EVENT_LOOP: must be one of {', '.join(EVENT_LOOPS)}, got {value!r}")
    if value == "uvloop" and not uvloop_installed():
        raise EnvError("EVENT_LOOP: uvloop is not installed (pip install 'jobspine[fast]')")
    return value


def load_settings(env: Mapping[str, str]) -> WorkerSettings:
    """Read and validate every variable; raises :class:`EnvError` naming the first bad one."""
    config = WorkerConfig(
        url=_url(env),
        token=_token(env),
        concurrency=_concurrency(env),
        heartbeat_interval_s=_heartbeat(env),
        # WORKER_POLL_S: how often an idle worker asks for work when no jobs:available push
        # came (the push wakes it at once).
        poll_interval_s=_seconds(env, "WORKER_POLL_S", "1"),
    )
    return WorkerSettings(config=config, types=_types(env), event_loop=_event_loop(env))


def build_worker(settings: WorkerSettings) -> Worker:
    worker = Worker(settings.config)
    for job_type in settings.types:
        worker.register(job_type, EXAMPLE_HANDLERS[job_type])
    return worker


async def serve(worker: Worker) -> None:
    """Run until SIGTERM/SIGINT, then stop gracefully."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    try:
        await worker.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the example workers; returns the process exit status."""
    try:
        settings = load_settings(os.environ if env is None else env)
    except EnvError as exc:
        print(f"jobspine worker: {exc}", file=sys.stderr)
        return 2
    try:
        # LOG_FORMAT (json|text) and LOG_LEVEL, as for the web process (docs/operations.md).
        configure_from_env(os.environ if env is None else env)
    except ValueError as exc:
        print(f"jobspine worker: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
            runner.run(serve(build_worker(settings)))
    except WorkerStopped as exc:
        print(f"jobspine worker: stopped: {exc}", file=sys.stderr)
        return 1
    return 0
