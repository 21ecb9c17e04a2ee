"""Job handlers for SDK tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from workers.sdk.context import JobContext


class Forever:
    """A handler that runs until it is cancelled: it sets :attr:`started` (after ``first``,
    if given, returned), and :attr:`cancelled` when the cancellation reaches it."""

    def __init__(self, first: Callable[[JobContext], Awaitable[None]] | None = None) -> None:
        self.first = first
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, ctx: JobContext) -> None:
        if self.first is not None:
            await self.first(ctx)
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
