"""Room names: every job event goes to its job's room and its owner's room."""

from __future__ import annotations

USER_NAMESPACE = "/"
WORKER_NAMESPACE = "/workers"


JOB_ROOM_PREFIX = "job:"


def job_room(job_id: str) -> str:
    return f"{JOB_ROOM_PREFIX}{job_id}"


def job_of_room(room: str) -> str | None:
    """The job id of a ``job:<id>`` room; ``None`` for any other room."""
    return room.removeprefix(JOB_ROOM_PREFIX) if room.startswith(JOB_ROOM_PREFIX) else None


USER_ROOM_PREFIX = "user:"


def user_room(user_id: str) -> str:
    return f"{USER_ROOM_PREFIX}{user_id}"


def user_of_room(room: str) -> str | None:
    """The user id of a ``user:<id>`` room; ``None`` for any other room."""
    return room.removeprefix(USER_ROOM_PREFIX) if room.startswith(USER_ROOM_PREFIX) else None


__all__ = [
    "USER_NAMESPACE",
    "WORKER_NAMESPACE",
    "job_of_room",
    "job_room",
    "user_of_room",
    "user_room",
]
