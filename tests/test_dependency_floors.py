"""The floors in pyproject.toml cover what the code calls directly: a dependency pulled in
only through another's extra (hiredis through ``redis[hiredis]``) gets a floor of its own
once the code uses an API newer than that extra's floor allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import hiredis

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def floor_of(name: str) -> tuple[int, ...] | None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        found = re.fullmatch(rf"{re.escape(name)}>=([0-9.]+)", requirement)
        if found:
            return tuple(int(part) for part in found.group(1).split("."))
    return None


def test_hiredis_has_a_floor_with_pack_command() -> None:
    # redis_connection.pack calls hiredis.pack_command (hiredis-py 2.2.1 and later), while
    # redis 5.0's hiredis extra accepts hiredis 1.0.
    assert hasattr(hiredis, "pack_command")
    floor = floor_of("hiredis")
    assert floor is not None, "pyproject.toml names no floor for hiredis"
    assert floor >= (2, 2, 1)
