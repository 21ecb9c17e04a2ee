"""What the memory store keeps of a caller's JSON values: one copy each.

A job's input and result are copied once when they enter the store (so no caller can change
them afterwards), and the events that carry them (``job:created``'s snapshot,
``job:completed``'s result) share that copy instead of holding a second one: a job costs
what its data costs, once (issue 13: ``[{}, {}, …]`` of 1 MB used to retain about 75 MB).
"""

from __future__ import annotations

import copy
from typing import Any

import attrs

from server.store.model import EventSpec, JobChange, StoredJob

#: Record fields that hold a caller's JSON value (an input, a result): the store keeps one
#: copy of each, its own, and the events that carry one share it.
_OWNED_FIELDS = ("input", "result")


def owning_values(change: JobChange) -> JobChange:
    """``change`` with the JSON values it sets copied once, so the store owns them."""
    copied = {
        name: copy.deepcopy(change.fields[name])
        for name in _OWNED_FIELDS
        if change.fields.get(name) is not None
    }
    return attrs.evolve(change, fields={**change.fields, **copied}) if copied else change


#: JSON values a copy of which is the value itself (exact types: a subclass may be mutable).
_IMMUTABLE_SCALARS = frozenset({str, int, float, bool, type(None)})


def event_data(spec: EventSpec, job: StoredJob) -> dict[str, Any]:
    """An event's data, detached from the caller. Where it carries the job's own input or
    result (``job:created``'s snapshot, ``job:completed``'s result) it shares the record's
    copy instead of holding a second one: the memory an input costs is one copy of it."""
    data = spec.render(job)
    if all(type(value) in _IMMUTABLE_SCALARS for value in data.values()):
        return data  # a fresh dict (``render``'s) of values no caller can change
    owned = {name: getattr(job.record, name) for name in _OWNED_FIELDS}
    snapshot = data.get("job")
    if isinstance(snapshot, dict):
        data["job"] = snapshot | _same_values(snapshot, owned)
    data.update(_same_values(data, owned))
    shared = {id(value): value for value in owned.values() if value is not None}
    detached: dict[str, Any] = copy.deepcopy(data, shared)
    return detached


def _same_values(data: dict[str, Any], owned: dict[str, Any]) -> dict[str, Any]:
    """The owned values that ``data`` holds an equal copy of, by name."""
    return {
        name: value
        for name, value in owned.items()
        if value is not None and name in data and data[name] == value
    }


__all__ = ["event_data", "owning_values"]
