"""Counts a store's stream reads, to check what a call reads: one job's (``read_stream``),
and many jobs' at once (``read_streams``, with the jobs each batch found)."""

from __future__ import annotations

from typing import Any

from server.store.base import JobStore


class CountedReads:
    def __init__(self, store: JobStore) -> None:
        self.single = 0
        self.batched = 0
        #: The job ids each batched read found, in order.
        self.found: list[list[str]] = []
        read_stream, read_streams = store.read_stream, store.read_streams

        async def one(job_id: str, after_seq: int) -> Any:
            self.single += 1
            return await read_stream(job_id, after_seq)

        async def many(requests: Any, **options: Any) -> Any:
            self.batched += 1
            batch = await read_streams(requests, **options)
            self.found.append(list(batch.reads))
            return batch

        store.read_stream = one  # type: ignore[method-assign]
        store.read_streams = many  # type: ignore[method-assign]
