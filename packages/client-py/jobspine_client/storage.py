"""Where the client keeps each watched job's cursor and snapshot, so that a restarted process
resumes by replay: any object with ``get_item``/``set_item``/``remove_item`` (the browser's
``localStorage`` shape). :class:`MemoryStorage` lives as long as the process;
:class:`FileStorage` keeps one small JSON file per key in a directory."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_from_wire, job_to_wire


class Storage(Protocol):
    def get_item(self, key: str) -> str | None: ...

    def set_item(self, key: str, value: str) -> None: ...

    def remove_item(self, key: str) -> None: ...


class MemoryStorage:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get_item(self, key: str) -> str | None:
        return self.items.get(key)

    def set_item(self, key: str, value: str) -> None:
        self.items[key] = value

    def remove_item(self, key: str) -> None:
        self.items.pop(key, None)


class FileStorage:
    """One file per key under ``directory``, each replaced atomically (a crash mid-write
    leaves the previous value)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def get_item(self, key: str) -> str | None:
        try:
            return self._path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def set_item(self, key: str, value: str) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(value)
            os.replace(temporary, self._path(key))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def remove_item(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


#: Format of a stored watch; the TS client reads and writes the same.
FORMAT = 1


class WatchStore:
    """Watches' snapshots in a :class:`Storage`: ``{"format": 1, "job": <snapshot>}`` under
    ``jobspine:<url>:watch:<job id>``. Without a storage it keeps nothing."""

    def __init__(self, storage: Storage | None, url: str) -> None:
        self.storage = storage
        self.prefix = f"jobspine:{url}:watch:"

    def load(self, job_id: str) -> JobRecord | None:
        raw = self.storage.get_item(self.prefix + job_id) if self.storage else None
        if raw is None:
            return None
        try:
            stored = json.loads(raw)
            job = job_from_wire(stored["job"]) if stored["format"] == FORMAT else None
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: start from the snapshot
        return job if job is not None and job.id == job_id else None

    def save(self, job: JobRecord | None) -> None:
        if self.storage is not None and job is not None:
            stored = {"format": FORMAT, "job": job_to_wire(job)}
            self.storage.set_item(self.prefix + job.id, json.dumps(stored))

    def forget(self, job_id: str) -> None:
        if self.storage is not None:
            self.storage.remove_item(self.prefix + job_id)


__all__ = ["FileStorage", "MemoryStorage", "Storage", "WatchStore"]
