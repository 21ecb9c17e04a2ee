"""Background tasks owned by the aiohttp lifecycle: start named, stop without leaking."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def start_task(coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    """Start a named side task whose unexpected death is logged, never silent."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_log_death)
    return task


def _log_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s died", task.get_name(), exc_info=exc)


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; re-raise if we ourselves are being cancelled."""
    if task.done():
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task %s had already died", task.get_name())
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
