"""Room names: every job event goes to its job's room and its owner's room."""

from __future__ import annotations

USER_NAMESPACE = "/"
WORKER_NAMESPACE = "/workers"


def job_room(job_id: str) -> str:
    return f"job:{job_id}"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


__all__ = ["USER_NAMESPACE", "WORKER_NAMESPACE", "job_room", "user_room"]
