"""Rewrite the generated wire types: ``python scripts/gen_wire_types.py [--check]``.

Each entry of :data:`OUTPUTS` is one committed file and the function that renders it; a new
target (another language's types) is one more entry. ``--check`` rewrites nothing and exits 1
naming every file that differs from what the code renders (the drift test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from jobspine_shared.wire_schema import wire_document
from jobspine_shared.wire_typescript import typescript_module

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "packages" / "shared" / "schema" / "wire.schema.json"
TYPESCRIPT_PATH = ROOT / "packages" / "client-js" / "src" / "generated" / "wire.ts"


def render_schema() -> str:
    return json.dumps(wire_document(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def render_typescript() -> str:
    return typescript_module(wire_document())


#: committed file -> its renderer.
OUTPUTS: dict[Path, Callable[[], str]] = {
    SCHEMA_PATH: render_schema,
    TYPESCRIPT_PATH: render_typescript,
}


def stale_outputs() -> list[Path]:
    """The outputs whose committed copy differs from what the code renders."""
    return [
        path
        for path, render in OUTPUTS.items()
        if not path.exists() or path.read_text() != render()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a copy is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_outputs()
        for path in stale:
            print(
                f"{path.relative_to(ROOT)} is stale: run python scripts/gen_wire_types.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, render in OUTPUTS.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
