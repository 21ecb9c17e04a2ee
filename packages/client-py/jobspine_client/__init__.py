"""jobspine's Python client: watch jobs live across reconnects and restarts, act on them.

    async with JobspineClient(url, token=token) as client:
        job = await client.create("research", {"query": "solar"})
        watch = client.watch(job.id)
        watch.on("change", lambda job: print(job.state, job.progress))

See docs/clients.md.
"""

from __future__ import annotations

from jobspine_client.client import JobPage, JobspineClient
from jobspine_client.connection import Status
from jobspine_client.errors import JobspineError
from jobspine_client.fold import apply_event
from jobspine_client.storage import FileStorage, MemoryStorage, Storage
from jobspine_client.stream import JobStream, Verdict
from jobspine_client.watch import UserWatch, Watch

__all__ = [
    "FileStorage",
    "JobPage",
    "JobStream",
    "JobspineClient",
    "JobspineError",
    "MemoryStorage",
    "Status",
    "Storage",
    "UserWatch",
    "Verdict",
    "Watch",
    "apply_event",
]
