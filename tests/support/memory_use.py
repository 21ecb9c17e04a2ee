"""How much memory a (server) process holds, for tests that bound it."""

from __future__ import annotations

from pathlib import Path

#: The resident memory a web process stays under through the abuse tests.
RSS_BOUND_KIB = 200 * 1024


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid``, in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")
