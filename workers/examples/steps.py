"""What the example workers share: reading the common input, and the step loop with its
progress/checkpoint/resume discipline.

An example is a pure step function ``(k, state) -> state`` over a small JSON state plus a
result function; :func:`run_steps` does the rest, identically for every type:

* after step k it reports progress ``100*k/N`` with a step text ``step k/N: <phase>``, then
  checkpoints ``{"completed_steps": k, "seed": …, **state}``;
* a resumed attempt restores the state from the checkpoint and starts at step
  ``completed_steps + 1``;
* every value comes from a sha256 chain over the input, so the result depends on the input
  only, not on how often the job was paused, recovered or resumed on the way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from workers.sdk.context import JobContext

MAX_STEPS = 1000
DEFAULT_STEPS = 5
MAX_STEP_SECONDS = 60.0
DEFAULT_STEP_SECONDS = 1.0

State = dict[str, Any]
StepFunction = Callable[[int, State], State]


class InvalidInput(ValueError):
    """The job's input is not what this type accepts; the job fails with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid input: {message}")


class InvalidCheckpoint(ValueError):
    """The checkpoint to resume from was not written by this type for this input."""

    def __init__(self, message: str) -> None:
        super().__init__(f"cannot resume from the checkpoint: {message}")


@attrs.frozen
class StepPlan:
    steps: int
    step_seconds: float


def _describe(value: object) -> str:
    return f"{value!r:.60}"


def read_plan(data: Mapping[str, Any]) -> StepPlan:
    """``steps`` (integer 1..1000, default 5) and ``step_seconds`` (number 0..60, default 1)."""
    steps = data.get("steps", DEFAULT_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InvalidInput(
            f"steps must be an integer from 1 to {MAX_STEPS}, got {_describe(steps)}"
        )
    seconds = data.get("step_seconds", DEFAULT_STEP_SECONDS)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_STEP_SECONDS
    ):
        raise InvalidInput(
            f"step_seconds must be a number from 0 to {MAX_STEP_SECONDS:g}, "
            f"got {_describe(seconds)}"
        )
    return StepPlan(steps=steps, step_seconds=float(seconds))


def read_input(ctx: JobContext) -> Mapping[str, Any]:
    data = ctx.job.input
    if not isinstance(data, Mapping):
        raise InvalidInput(f"the input must be a JSON object, got {type(data).__name__}")
    return data


def require_text(data: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {_describe(value)}")
    if len(value) > max_length:
        raise InvalidInput(f"{name} must be at most {max_length} characters")
    return value


def digest(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``: the source of every simulated value."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def draw(hex_digest: str, offset: int, modulo: int) -> int:
    """A deterministic number in ``[0, modulo)`` from four bytes of ``hex_digest``."""
    return int(hex_digest[offset * 8 : offset * 8 + 8], 16) % modulo


def phase(labels: Sequence[str], k: int, steps: int) -> str:
    """The phase of step k: the steps spread evenly over ``labels``, in order, so the first
    step is the first phase and the last step the last phase."""
    if steps == 1:
        return labels[-1]
    return labels[round((k - 1) * (len(labels) - 1) / (steps - 1))]


async def simulate_work(seconds: float) -> None:
    """The simulated work of one step (a module function so tests can count the calls)."""
    await asyncio.sleep(seconds)


def resume_point(checkpoint: Mapping[str, Any] | None, *, seed: str, steps: int) -> int:
    """How many steps the checkpoint says are done (0 without one)."""
    if checkpoint is None:
        return 0
    done = checkpoint.get("completed_steps")
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= steps:
        raise InvalidCheckpoint(f"completed_steps must be an integer from 0 to {steps}")
    if checkpoint.get("seed") != seed:
        raise InvalidCheckpoint("it was written for a different input")
    return done


async def run_steps(
    ctx: JobContext,
    *,
    plan: StepPlan,
    seed: str,
    labels: Sequence[str],
    initial: State,
    step: StepFunction,
) -> State:
    """Run steps ``completed_steps+1 .. N`` and return the final state."""
    checkpoint = ctx.checkpoint_data
    done = resume_point(checkpoint, seed=seed, steps=plan.steps)
    state = dict(initial)
    if checkpoint is not None:
        missing = set(initial) - set(checkpoint)
        if missing:
            raise InvalidCheckpoint(f"missing {', '.join(sorted(missing))}")
        state = {key: checkpoint[key] for key in initial}
    for k in range(done + 1, plan.steps + 1):
        await simulate_work(plan.step_seconds)
        state = step(k, state)
        await ctx.progress(
            100 * k / plan.steps, f"step {k}/{plan.steps}: {phase(labels, k, plan.steps)}"
        )
        await ctx.checkpoint({"completed_steps": k, "seed": seed, **state})
    return state


#: One step of a job seeded by a text field: (seed, k, state) -> the state after step k.
SeededStep = Callable[[str, int, State], State]


async def run_text_job(
    ctx: JobContext,
    *,
    job_type: str,
    field: str,
    labels: Sequence[str],
    initial: State,
    step: SeededStep,
    max_length: int = 200,
) -> tuple[str, StepPlan, State]:
    """A job seeded by one text field of its input (research's query, analysis's dataset):
    check the input, seed from (job type, text, steps), run the steps from
    ``{"digest": seed, **initial}``. Returns the text, the plan and the final state."""
    data = read_input(ctx)
    plan = read_plan(data)
    text = require_text(data, field, max_length=max_length)
    seed = digest(job_type, text, plan.steps)
    state = await run_steps(
        ctx,
        plan=plan,
        seed=seed,
        labels=labels,
        initial={"digest": seed, **initial},
        step=lambda k, s: step(seed, k, s),
    )
    return text, plan, state
