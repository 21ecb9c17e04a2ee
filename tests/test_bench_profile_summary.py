"""The profile summaries of ``scripts/bench profile`` and ``scripts/bench peer --profile``,
on a small collapsed-stack file of the shape ``py-spy record --format raw`` writes."""

from __future__ import annotations

from pathlib import Path

from scripts.benchsuite.profile import self_by_package, summarise

RUN = "run (/usr/lib/python3.11/asyncio/runners.py:118)"
SITE = "/venv/lib/python3.11/site-packages"
STACKS = "\n".join(
    [
        f"{RUN};dispatch (server/realtime/dispatch.py:122) 30",
        f"{RUN};emit ({SITE}/socketio/async_server.py:40) 50",
        f"{RUN};_do_execute ({SITE}/asyncpg/connection.py:9) 15",
        f"{RUN} 5",
    ]
)


def test_self_time_is_counted_under_the_package_of_the_innermost_frame(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(STACKS + "\n")
    assert self_by_package(stacks) == {
        "python-socketio": 50.0,
        "jobspine server": 30.0,
        "asyncpg": 15.0,
        "asyncio": 5.0,
    }


def test_the_summary_counts_samples_and_ranks_frames_by_self_and_total(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(STACKS + "\n")
    text = summarise(stacks, 3)
    assert text.startswith("100 samples")
    own, total = text.split("total %")
    assert own.index("emit") < own.index("dispatch") < own.index("_do_execute")
    assert "100.0   run" in total
