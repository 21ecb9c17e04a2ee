"""``research``: search for a query, read sources, keep the best findings, summarise.

Input: ``{"query": str, "steps"?, "step_seconds"?}``. Each step consults one simulated
source and scores it; the three best findings so far are kept in the checkpoint.
"""

from __future__ import annotations

from typing import Any

from workers.examples.steps import State, digest, draw, run_text_job
from workers.sdk.context import JobContext

JOB_TYPE = "research"
PHASES = (
    "planning search",
    "fetching sources",
    "reading sources",
    "extracting findings",
    "drafting summary",
)
TOP_FINDINGS = 3


def research_step(seed: str, k: int, state: State) -> State:
    h = digest(seed, k, state["digest"])
    finding = {"source": f"src-{h[8:16]}", "relevance": draw(h, 0, 100)}
    findings = sorted([*state["findings"], finding], key=lambda f: (-f["relevance"], f["source"]))[
        :TOP_FINDINGS
    ]
    return {"digest": h, "sources": state["sources"] + 1, "findings": findings}


async def handle(ctx: JobContext) -> dict[str, Any]:
    query, plan, state = await run_text_job(
        ctx,
        job_type=JOB_TYPE,
        field="query",
        max_length=1000,
        labels=PHASES,
        initial={"sources": 0, "findings": []},
        step=research_step,
    )
    best = state["findings"]
    return {
        "query": query,
        "summary": (
            f"{len(best)} key finding(s) for {query!r} from {state['sources']} source(s); "
            f"best relevance {best[0]['relevance'] if best else 0}"
        ),
        "findings": best,
        "sources_consulted": state["sources"],
        "digest": state["digest"],
        "completed_steps": plan.steps,
    }
