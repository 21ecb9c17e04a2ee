"""What every bench prints: one JSON line per result, then one table.

Every subcommand of ``scripts/bench`` prints its results through :func:`emit`: a JSON object
per line with ``bench`` (the subcommand), the result's own keys, ``date`` and ``machine``
(cores, CPU model, Python and library versions, the load average when the run began). After
the lines comes one table, drawn by :func:`table` from the same dicts. ``python -m
scripts.benchsuite report FILE`` renders a suite results file as Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

#: One result as printed: a JSON object.
Line = dict[str, Any]


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@functools.cache
def machine() -> dict[str, Any]:
    """The machine and library versions, read once per run (the load average with it)."""
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


@functools.cache
def _started() -> str:
    return now_iso()


def line(bench: str, fields: Mapping[str, Any]) -> Line:
    """``fields`` as one bench's result line: ``bench`` first, ``date`` and ``machine`` last
    (both of the run's start)."""
    return {"bench": bench, **fields, "date": _started(), "machine": machine()}


def emit(bench: str, fields: Mapping[str, Any]) -> Line:
    """Print ``fields`` as one JSON line of ``bench`` (flushed at once); returns the line."""
    printed = line(bench, fields)
    print(json.dumps(printed), flush=True)
    return printed


def rounded(value: float) -> float:
    """Three significant digits at least (integers keep theirs)."""
    if value == 0 or not math.isfinite(value):
        return value
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return round(value, digits)


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def cell(value: Any) -> str:
    """A table cell: ``-`` for None, yes/no for booleans, numbers by :func:`number`, a dict
    (of error counts) as its total."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict):
        return str(sum(value.values()))
    return str(value)


@attrs.frozen
class Column:
    key: str
    title: str
    #: How the cell is written; :func:`cell` by default.
    show: Callable[[Any], str] = cell
    numeric: bool = True


def text(key: str, title: str | None = None) -> Column:
    """A left-aligned column shown as it is."""
    return Column(key, title or key, show=cell, numeric=False)


#: The statistics :func:`spread_ms` can tell, by name.
SPREAD: dict[str, Callable[[Sequence[float]], float]] = {
    "median": statistics.median,
    "min": min,
    "max": max,
}


def spread_ms(values_ms: Sequence[float], *stats: str) -> Line:
    """``<stat>_ms`` of ``values_ms`` for each of ``stats`` (of :data:`SPREAD`), to 0.1 ms."""
    return {f"{stat}_ms": round(SPREAD[stat](values_ms), 1) for stat in stats}


def spread_columns(*stats: str) -> tuple[Column, ...]:
    """The columns of :func:`spread_ms`'s keys."""
    return tuple(Column(f"{stat}_ms", f"{stat} ms") for stat in stats)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """The one report table: a header, a rule, one row per result; text left-aligned,
    numbers right-aligned; a key a row lacks is ``-``."""
    cells = [[c.title for c in columns]]
    cells += [[c.show(row.get(c.key)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]

    def render(r: list[str]) -> str:
        return "  ".join(
            value.rjust(w) if c.numeric else value.ljust(w)
            for value, w, c in zip(r, widths, columns, strict=True)
        ).rstrip()

    lines = [render(r) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """The same table in Markdown (for docs/performance.md)."""
    out = [
        "| " + " | ".join(c.title for c in columns) + " |",
        "| " + " | ".join("---:" if c.numeric else "---" for c in columns) + " |",
    ]
    out += ["| " + " | ".join(c.show(row.get(c.key)) for c in columns) + " |" for row in rows]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/bench report FILE``: a ``scripts/bench suite --out`` file as Markdown."""
    from scripts.benchsuite.suite import COLUMNS  # the suite's columns

    parser = argparse.ArgumentParser(
        prog="scripts/bench report", description="a results file as a Markdown table"
    )
    parser.add_argument("results", type=Path, help="a file written by scripts/bench --out")
    args = parser.parse_args(argv)
    print(markdown(json.loads(args.results.read_text())["results"], COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
