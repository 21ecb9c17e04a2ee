"""Reading text log lines in tests: the message without its trailing ``key=value`` context."""

from __future__ import annotations

import re

#: The ``key=value`` context at the end of a text log line (`` job_id=… worker_id=…``).
LOG_CONTEXT = re.compile(r"( [a-z_]+=\S*)+$")


def log_messages(log: str) -> list[str]:
    """Each line of ``log`` with its trailing context removed, so a test compares messages."""
    return [LOG_CONTEXT.sub("", line) for line in log.splitlines()]
