"""Example workers: simulated, multi-step, resumable handlers for ``research``, ``trade`` and
``analysis`` (see :mod:`workers.examples.steps` for the behaviour they share)."""

from __future__ import annotations

from collections.abc import Mapping

from workers.examples import analysis, research, trade
from workers.sdk.context import Handler

EXAMPLE_HANDLERS: Mapping[str, Handler] = {
    research.JOB_TYPE: research.handle,
    trade.JOB_TYPE: trade.handle,
    analysis.JOB_TYPE: analysis.handle,
}

__all__ = ["EXAMPLE_HANDLERS"]
