"""Waiting on several events at once, with a timeout, without leaking waiter tasks."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, within_s: float | None = None) -> bool:
    """Return True as soon as one of ``events`` is set, False when ``within_s`` passed first."""
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return bool(done)
