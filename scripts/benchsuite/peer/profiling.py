"""Where the time goes in a peer run: py-spy on the web process, ``pg_stat_statements`` on a
private PostgreSQL cluster (``scripts/bench peer --profile DIR``).

The shared development cluster does not preload ``pg_stat_statements`` (that needs a
restart, which would cut everyone's connections), so the profile runs its Postgres targets on
a cluster of its own: ``initdb`` into a temporary folder as the ``postgres`` user, started on
a free port with the extension preloaded and otherwise default settings (``fsync`` and
``synchronous_commit`` on, as the shared one), removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.databases import BASE_DSN_ENV, base_dsn
from tests.support.processes import free_port

PG_ROOT = Path("/usr/lib/postgresql")
SPY_RATE_HZ = 200


def _postgres_bin() -> Path:
    versions = sorted(PG_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise SystemExit("--profile needs PostgreSQL's server binaries under /usr/lib/postgresql")
    return versions[-1].parent


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user (initdb and postgres refuse to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[str]:
    """A fresh cluster with ``pg_stat_statements`` preloaded; sets ``JOBSPINE_TEST_DATABASE_URL``
    to it meanwhile (scratch databases and CPU readings follow it); its URL."""
    bindir = _postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="jobspine-peer-pg-"))
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    port = free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    await asyncio.to_thread(subprocess.run, _as_postgres(initdb), check=True, capture_output=True)
    options = (
        f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    )
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w"]
    start = [*pg_ctl, "-o", options, "start"]
    await asyncio.to_thread(subprocess.run, _as_postgres(start), check=True, capture_output=True)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    previous = os.environ.get(BASE_DSN_ENV)
    os.environ[BASE_DSN_ENV] = url
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE EXTENSION pg_stat_statements")
        finally:
            await conn.close()
        yield url
    finally:
        if previous is None:
            os.environ.pop(BASE_DSN_ENV, None)
        else:
            os.environ[BASE_DSN_ENV] = previous
        stop = [*pg_ctl, "-m", "fast", "stop"]
        await asyncio.to_thread(subprocess.run, _as_postgres(stop), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


async def reset_statements() -> None:
    conn = await asyncpg.connect(base_dsn())
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def statement_calls(database: str) -> int:
    """The statements clients sent to ``database`` since the last reset, BEGIN and COMMIT
    included: its round trips (top-level only; a trigger's or a foreign key's own queries,
    which ``pg_stat_statements.track=all`` also lists, are not counted)."""
    conn = await asyncpg.connect(base_dsn())
    try:
        calls = await conn.fetchval(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 AND s.toplevel",
            database,
        )
    finally:
        await conn.close()
    return int(calls)


async def top_statements(database: str, top: int = 12) -> list[dict[str, Any]]:
    """The statements of ``database`` since the last reset, by total execution time."""
    conn = await asyncpg.connect(base_dsn())
    try:
        rows = await conn.fetch(
            "SELECT s.calls, s.total_exec_time, s.mean_exec_time, s.rows,"
            " regexp_replace(s.query, '\\s+', ' ', 'g') AS query"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = $1 ORDER BY s.total_exec_time DESC LIMIT $2",
            database,
            top,
        )
    finally:
        await conn.close()
    return [
        {
            "calls": r["calls"],
            "total_ms": round(r["total_exec_time"], 1),
            "mean_ms": round(r["mean_exec_time"], 3),
            "rows": r["rows"],
            "query": r["query"][:160],
        }
        for r in rows
    ]


@contextlib.asynccontextmanager
async def py_spy(pid: int, out: Path) -> AsyncIterator[None]:
    """``py-spy record`` of ``pid`` while the block runs (collapsed stacks into ``out``)."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [binary, "record", "--pid", str(pid), "--format", "raw"]
    command += ["--rate", str(SPY_RATE_HZ), "--output", str(out), "--nonblocking"]
    recorder = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            await asyncio.wait_for(recorder.wait(), 30)
        except TimeoutError:
            recorder.kill()
            await recorder.wait()
