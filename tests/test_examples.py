"""The example workers, driven through :class:`~workers.testing.FakeJobContext` (no server).

The context is the handlers' interface, so a fake one is a legitimate test double here; the
end-to-end runs against the real server are in ``test_sdk_live.py``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from server.config import load_settings
from server.devmode import banner
from workers.examples import EXAMPLE_HANDLERS, steps
from workers.examples.steps import InvalidCheckpoint, InvalidInput
from workers.sdk.context import Handler
from workers.sdk.errors import PauseRequested
from workers.testing import FakeJobContext

TYPES = sorted(EXAMPLE_HANDLERS)
OWN_FIELDS: dict[str, dict[str, Any]] = {
    "research": {"query": "battery recycling in the EU"},
    "trade": {"symbol": "ACME", "quantity": 1234, "side": "sell"},
    "analysis": {"dataset": "sales-2024"},
}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the simulated work instead of sleeping it."""
    slept: list[float] = []

    async def simulate_work(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(steps, "simulate_work", simulate_work)
    return slept


def job_input(job_type: str, **common: Any) -> dict[str, Any]:
    return {**OWN_FIELDS[job_type], **common}


async def run(handler: Handler, ctx: FakeJobContext) -> Any:
    return await handler(ctx)


@pytest.mark.parametrize("job_type", TYPES)
async def test_reports_each_step_then_checkpoints_it(
    job_type: str, no_waiting: list[float]
) -> None:
    ctx = FakeJobContext(job_type, job_input(job_type, steps=5, step_seconds=0.25))

    result = await run(EXAMPLE_HANDLERS[job_type], ctx)

    assert [value for value, _ in ctx.progress_reports] == [20.0, 40.0, 60.0, 80.0, 100.0]
    for k, (_, step) in enumerate(ctx.progress_reports, start=1):
        assert step is not None
        assert step.startswith(f"step {k}/5: ")
    assert [c["completed_steps"] for c in ctx.checkpoints] == [1, 2, 3, 4, 5]
    assert result["completed_steps"] == 5
    assert no_waiting == [0.25] * 5


@pytest.mark.parametrize("job_type", TYPES)
async def test_defaults_to_five_steps(job_type: str, no_waiting: list[float]) -> None:
    ctx = FakeJobContext(job_type, job_input(job_type))

    result = await run(EXAMPLE_HANDLERS[job_type], ctx)

    assert result["completed_steps"] == 5
    assert no_waiting == [1.0] * 5


@pytest.mark.parametrize("job_type", TYPES)
async def test_result_is_deterministic_for_an_input(job_type: str) -> None:
    first = await run(EXAMPLE_HANDLERS[job_type], FakeJobContext(job_type, job_input(job_type)))
    second = await run(EXAMPLE_HANDLERS[job_type], FakeJobContext(job_type, job_input(job_type)))
    other = await run(
        EXAMPLE_HANDLERS[job_type], FakeJobContext(job_type, job_input(job_type, steps=6))
    )

    assert first == second
    assert other["digest"] != first["digest"]


@pytest.mark.parametrize("job_type", TYPES)
@pytest.mark.parametrize("paused_after", [1, 3, 7])
async def test_resumed_attempt_continues_after_the_checkpoint(
    job_type: str, paused_after: int
) -> None:
    handler = EXAMPLE_HANDLERS[job_type]
    data = job_input(job_type, steps=8, step_seconds=0)
    uninterrupted = await run(handler, FakeJobContext(job_type, data))

    first = FakeJobContext(job_type, data, pause_after_checkpoints=paused_after)
    with pytest.raises(PauseRequested):
        await run(handler, first)
    saved = first.checkpoints[-1]
    assert saved["completed_steps"] == paused_after

    second = FakeJobContext(job_type, data, checkpoint=saved)
    result = await run(handler, second)

    assert [c["completed_steps"] for c in second.checkpoints] == list(range(paused_after + 1, 9))
    assert second.progress_reports[0][0] == pytest.approx(100 * (paused_after + 1) / 8)
    assert second.progress_reports[0][1] is not None
    assert second.progress_reports[0][1].startswith(f"step {paused_after + 1}/8: ")
    assert result == uninterrupted


@pytest.mark.parametrize("job_type", TYPES)
async def test_resuming_a_finished_checkpoint_only_builds_the_result(job_type: str) -> None:
    handler = EXAMPLE_HANDLERS[job_type]
    data = job_input(job_type, steps=3, step_seconds=0)
    whole = FakeJobContext(job_type, data)
    expected = await run(handler, whole)

    again = FakeJobContext(job_type, data, checkpoint=whole.checkpoints[-1])
    assert await run(handler, again) == expected
    assert again.progress_reports == []


@pytest.mark.parametrize("job_type", TYPES)
async def test_a_checkpoint_of_another_input_is_refused(job_type: str) -> None:
    handler = EXAMPLE_HANDLERS[job_type]
    first = FakeJobContext(job_type, job_input(job_type, steps=4, step_seconds=0))
    await run(handler, first)

    other = FakeJobContext(
        job_type, job_input(job_type, steps=5, step_seconds=0), checkpoint=first.checkpoints[1]
    )
    with pytest.raises(InvalidCheckpoint, match="different input"):
        await run(handler, other)


@pytest.mark.parametrize("job_type", TYPES)
@pytest.mark.parametrize(
    ("common", "fragment"),
    [
        ({"steps": 0}, "steps must be an integer from 1 to 1000, got 0"),
        ({"steps": 1001}, "steps must be an integer from 1 to 1000"),
        ({"steps": "5"}, "steps must be an integer"),
        ({"steps": True}, "steps must be an integer"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"step_seconds": -1}, "step_seconds must be a number from 0 to 60, got -1"),
        ({"step_seconds": 61}, "step_seconds must be a number from 0 to 60"),
        ({"step_seconds": "1"}, "step_seconds must be a number"),
        ({"step_seconds": math.inf}, "step_seconds must be a number"),
    ],
)
async def test_invalid_common_input_fails_clearly(
    job_type: str, common: dict[str, Any], fragment: str
) -> None:
    ctx = FakeJobContext(job_type, job_input(job_type, **common))

    with pytest.raises(InvalidInput, match=r"^invalid input: ") as raised:
        await run(EXAMPLE_HANDLERS[job_type], ctx)

    assert fragment in str(raised.value)
    assert ctx.progress_reports == []


@pytest.mark.parametrize(
    ("job_type", "fields", "fragment"),
    [
        ("research", {}, "query must be a non-empty string"),
        ("research", {"query": "  "}, "query must be a non-empty string"),
        ("research", {"query": 7}, "query must be a non-empty string"),
        ("trade", {"quantity": 5}, "symbol must be"),
        ("trade", {"symbol": "acme", "quantity": 5}, "symbol must be"),
        ("trade", {"symbol": "ACME"}, "quantity must be an integer"),
        ("trade", {"symbol": "ACME", "quantity": 0}, "quantity must be an integer"),
        ("trade", {"symbol": "ACME", "quantity": 1.5}, "quantity must be an integer"),
        ("trade", {"symbol": "ACME", "quantity": 5, "side": "hold"}, "side must be"),
        ("analysis", {"dataset": ""}, "dataset must be a non-empty string"),
        ("analysis", {"dataset": ["a"]}, "dataset must be a non-empty string"),
    ],
)
async def test_invalid_own_fields_fail_clearly(
    job_type: str, fields: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        await run(EXAMPLE_HANDLERS[job_type], FakeJobContext(job_type, fields))


async def test_trade_fills_the_whole_order_even_with_more_steps_than_shares() -> None:
    ctx = FakeJobContext(
        "trade", {"symbol": "BRK.A", "quantity": 3, "steps": 10, "step_seconds": 0}
    )

    result = await run(EXAMPLE_HANDLERS["trade"], ctx)

    assert result["filled_quantity"] == 3
    assert result["fills"] == 3
    assert result["completed_steps"] == 10


async def test_a_thousand_steps_keep_the_checkpoint_small() -> None:
    ctx = FakeJobContext("research", {"query": "q", "steps": 1000, "step_seconds": 0})

    result = await run(EXAMPLE_HANDLERS["research"], ctx)

    assert result["completed_steps"] == 1000
    assert ctx.progress_reports[-1] == (100.0, "step 1000/1000: drafting summary")
    assert len(str(ctx.checkpoints[-1])) < 1000


async def test_the_job_that_the_dev_banner_suggests_completes() -> None:
    """``scripts/serve`` prints a curl command creating a job; a newcomer's first job must
    not fail on its input."""
    body = re.search(r"-d '(\{.*\})'", banner(load_settings({}, dev=True)))
    assert body is not None
    job = json.loads(body[1])
    ctx = FakeJobContext(job["type"], job["input"])

    result = await run(EXAMPLE_HANDLERS[job["type"]], ctx)

    assert result["completed_steps"] == steps.DEFAULT_STEPS
