"""Node for the JS tests: where it is, and the node_modules a JS directory needs.

Without node, or without a directory's ``npm install`` (``scripts/test`` runs it), the JS
tests skip, except under ``CI=true``, where they fail: CI never passes by skipping them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_node(directory: Path, package: str) -> str:
    """The ``node`` executable, once ``directory/node_modules/package`` is installed."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (directory / "node_modules" / package).is_dir():
        relative = directory.relative_to(ROOT)
        missing = f"{relative}/node_modules is missing: run npm install --prefix {relative}"
    if missing is not None or node is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} (required when CI=true)", pytrace=False)
        pytest.skip(str(missing))
    return node


__all__ = ["ROOT", "require_node"]
