"""Node for the JS tests: where it is, the node_modules a JS directory needs, and the
TypeScript client's build.

Without node, without a directory's ``npm install``, or without the client's build
(``dist/`` is not committed; ``scripts/test`` installs and builds), the JS tests skip,
except under ``CI=true``, where they fail: CI never passes by skipping them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: ``@jobspine/client``; its build (``npm run build``) is ``dist/``.
CLIENT_JS = ROOT / "packages" / "client-js"
CLIENT_BUILD = CLIENT_JS / "dist"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required when CI=true)", pytrace=False)
    pytest.skip(reason)


def require_node(directory: Path, package: str) -> str:
    """The ``node`` executable, once ``directory/node_modules/package`` is installed."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
    if not (directory / "node_modules" / package).is_dir():
        relative = directory.relative_to(ROOT)
        _unavailable(f"{relative}/node_modules is missing: run npm install --prefix {relative}")
    return node


def require_client_build(package: str = "typescript") -> str:
    """``node``, once ``packages/client-js`` has ``node_modules/package`` and its build."""
    node = require_node(CLIENT_JS, package)
    if not (CLIENT_BUILD / "index.js").is_file():
        relative = CLIENT_JS.relative_to(ROOT)
        _unavailable(f"{relative}/dist is missing: run npm run build --prefix {relative}")
    return node


__all__ = ["CLIENT_BUILD", "CLIENT_JS", "ROOT", "require_client_build", "require_node"]
