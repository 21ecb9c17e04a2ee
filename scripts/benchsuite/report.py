"""The readable table printed after the JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.benchsuite.common import Result


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(results: Sequence[Result]) -> str:
    header = ("measure", "name", "store", "value", "unit", "raw", "ratio", "goal", "met")
    rows = [header]
    for r in results:
        met = "-" if r.met is None else ("met" if r.met else "NOT MET")
        rows.append(
            (
                r.measure,
                r.name,
                r.store,
                _number(r.value),
                r.unit,
                _number(r.raw),
                "-" if r.ratio is None else f"{r.ratio:.2f}",
                r.goal or "-",
                met,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(lines: Sequence[dict[str, Any]]) -> str:
    """The results of a ``--out`` file as a Markdown table (for docs/performance.md)."""
    rows = [
        "| measure | result | store | jobspine | raw | ratio | goal | met |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in lines:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        rows.append(
            f"| {r['measure']} | {r['name']} | {r['store']} | {_number(r['value'])} {r['unit']} "
            f"| {_number(r['raw'])} | {ratio} | {r['goal'] or ''} | {met} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a results file as a Markdown table")
    parser.add_argument("results", type=Path, help="a file written by scripts/bench --out")
    args = parser.parse_args(argv)
    print(markdown(json.loads(args.results.read_text())["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
