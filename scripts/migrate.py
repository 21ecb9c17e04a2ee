"""Apply the Postgres store's schema migrations to ``$DATABASE_URL``.

The ``web`` process migrates at start anyway; this is for deploy pipelines that want the
schema in place (and any failure visible) before new code serves traffic.

Usage: ``DATABASE_URL=postgresql://… python scripts/migrate.py``
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import asyncpg

# Run from a checkout without installing the package too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.store.postgres.migrator import load_migrations, migrate


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dsn = os.environ.get("DATABASE_URL", "").strip()
    if not dsn:
        print("DATABASE_URL is not set: nothing to migrate", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(migrate(dsn))
    except (OSError, TimeoutError) as exc:
        print(f"DATABASE_URL: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as exc:
        print(f"migration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    known = len(load_migrations())
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none"
    print(f"applied {len(applied)} migration(s): {names}; schema at version {known}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
