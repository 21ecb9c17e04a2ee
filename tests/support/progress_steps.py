"""Step numbers read back from ``job:progress`` events, for tests that check which steps an
attempt did (and that a resumed one did not redo the work before its checkpoint)."""

from __future__ import annotations

import re
from typing import Any


def step_numbers(
    events: list[dict[str, Any]], pattern: re.Pattern[str], *, total: int | None = None
) -> list[int]:
    """The ``k`` of each ``job:progress`` event's step text, in order. ``pattern`` matches
    the whole text with ``k`` as group 1 and the step count as group 2 (which must equal
    ``total`` when given); every progress event must match."""
    numbers = []
    for event in events:
        if event["type"] == "job:progress":
            match = pattern.fullmatch(event["data"]["step"])
            assert match is not None, event
            assert total is None or int(match[2]) == total, event
            numbers.append(int(match[1]))
    return numbers
