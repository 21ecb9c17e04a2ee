"""Rewrite docs/openapi.json from the code: ``python scripts/gen_openapi.py [--check]``.

``--check`` rewrites nothing and exits 1 when the committed copy differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.rest.openapi import render_document

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the copy is stale")
    args = parser.parse_args()
    text = render_document()
    if args.check:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print(f"{DOCUMENT} is stale: run python scripts/gen_openapi.py", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
