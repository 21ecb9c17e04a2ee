"""``analysis``: scan a dataset partition by partition, keeping running aggregates.

Input: ``{"dataset": str, "steps"?, "step_seconds"?}``. Each step reads one simulated
partition; the checkpoint holds the aggregates so far (count, sum, min, max, anomalies).
"""

from __future__ import annotations

from typing import Any

from workers.examples.steps import State, digest, draw, run_text_job
from workers.sdk.context import JobContext

JOB_TYPE = "analysis"
PHASES = (
    "loading partitions",
    "cleaning rows",
    "computing aggregates",
    "detecting anomalies",
    "writing report",
)
#: A partition whose mean is this far from the running mean counts as an anomaly.
ANOMALY_DISTANCE = 400


def analysis_step(seed: str, k: int, state: State) -> State:
    h = digest(seed, k, state["digest"])
    rows = 1_000 + draw(h, 0, 9_000)
    low = draw(h, 1, 500)
    high = low + 100 + draw(h, 2, 900)
    mean = (low + high) // 2
    previous_mean = state["sum"] // state["rows"] if state["rows"] else mean
    return {
        "digest": h,
        "partitions": state["partitions"] + 1,
        "rows": state["rows"] + rows,
        "sum": state["sum"] + rows * mean,
        "min": low if state["min"] is None else min(state["min"], low),
        "max": high if state["max"] is None else max(state["max"], high),
        "anomalies": state["anomalies"] + int(abs(mean - previous_mean) >= ANOMALY_DISTANCE),
    }


async def handle(ctx: JobContext) -> dict[str, Any]:
    dataset, plan, state = await run_text_job(
        ctx,
        job_type=JOB_TYPE,
        field="dataset",
        labels=PHASES,
        initial={
            "partitions": 0,
            "rows": 0,
            "sum": 0,
            "min": None,
            "max": None,
            "anomalies": 0,
        },
        step=analysis_step,
    )
    return {
        "dataset": dataset,
        "partitions": state["partitions"],
        "rows": state["rows"],
        "mean": round(state["sum"] / state["rows"], 6),
        "min": state["min"],
        "max": state["max"],
        "anomalies": state["anomalies"],
        "digest": state["digest"],
        "completed_steps": plan.steps,
    }
