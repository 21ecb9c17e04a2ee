"""The readable table printed after the JSON lines."""

from __future__ import annotations

from collections.abc import Sequence

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
