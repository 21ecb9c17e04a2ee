"""Entry point of ``python -m workers`` (the Procfile's ``worker:`` line)."""

from __future__ import annotations

import sys

from workers.cli import main

if __name__ == "__main__":
    sys.exit(main())
