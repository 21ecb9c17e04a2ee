"""``trade``: execute an order in slices, one slice per step, at simulated prices.

Input: ``{"symbol": str, "quantity": int, "side"?: "buy"|"sell", "steps"?, "step_seconds"?}``.
Prices are integer cents so that sums are exact and the result is reproducible.
"""

from __future__ import annotations

import re
from typing import Any

from workers.examples.steps import (
    InvalidInput,
    State,
    digest,
    draw,
    read_input,
    read_plan,
    run_steps,
)
from workers.sdk.context import JobContext

JOB_TYPE = "trade"
PHASES = ("checking risk limits", "fetching quotes", "routing order", "filling order", "settling")
SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,11}")
MAX_QUANTITY = 1_000_000_000
SIDES = ("buy", "sell")


def slice_of(quantity: int, k: int, steps: int) -> int:
    """Step k's share of the order; the shares sum to ``quantity`` exactly."""
    return quantity * k // steps - quantity * (k - 1) // steps


def trade_step(seed: str, quantity: int, steps: int, k: int, state: State) -> State:
    h = digest(seed, k, state["digest"])
    base_cents = 1_000 + draw(seed, 0, 49_000)
    price_cents = base_cents + draw(h, 0, 101) - 50
    filled = slice_of(quantity, k, steps)
    return {
        "digest": h,
        "filled_quantity": state["filled_quantity"] + filled,
        "notional_cents": state["notional_cents"] + filled * price_cents,
        "fills": state["fills"] + (1 if filled else 0),
    }


async def handle(ctx: JobContext) -> dict[str, Any]:
    data = read_input(ctx)
    plan = read_plan(data)
    symbol = data.get("symbol")
    if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
        raise InvalidInput(
            f"symbol must be 1-12 characters of A-Z, 0-9 and '.', starting with a letter, "
            f"got {symbol!r:.40}"
        )
    quantity = data.get("quantity")
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not 0 < quantity <= MAX_QUANTITY
    ):
        raise InvalidInput(
            f"quantity must be an integer from 1 to {MAX_QUANTITY}, got {quantity!r:.40}"
        )
    side = data.get("side", "buy")
    if side not in SIDES:
        raise InvalidInput(f"side must be 'buy' or 'sell', got {side!r:.40}")
    seed = digest(JOB_TYPE, symbol, quantity, side, plan.steps)
    state = await run_steps(
        ctx,
        plan=plan,
        seed=seed,
        labels=PHASES,
        initial={"digest": seed, "filled_quantity": 0, "notional_cents": 0, "fills": 0},
        step=lambda k, s: trade_step(seed, quantity, plan.steps, k, s),
    )
    filled, notional = state["filled_quantity"], state["notional_cents"]
    return {
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "filled_quantity": filled,
        "fills": state["fills"],
        "notional": notional / 100,
        "average_price": round(notional / filled / 100, 4),
        "digest": state["digest"],
        "completed_steps": plan.steps,
    }
