"""``EVENT_LOOP`` for every jobspine process (the web process and ``python -m workers``):
uvloop when installed (``auto``, the default) or asked for, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

#: The values ``EVENT_LOOP`` takes.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory of ``choice`` (one of :data:`EVENT_LOOPS`, checked by the caller's
    configuration); ``None`` for asyncio's own loop."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None  # the configuration refused "uvloop" when it is not installed
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


__all__ = ["EVENT_LOOPS", "event_loop_factory", "uvloop_installed"]
