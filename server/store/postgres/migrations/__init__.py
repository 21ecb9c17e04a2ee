"""SQL migrations of the Postgres store, applied in order by :mod:`server.store.postgres.migrator`.

Files are named ``NNNN_name.sql``; a file, once released, is never edited: add a new one.
"""

from __future__ import annotations
