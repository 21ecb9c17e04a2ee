"""Helpers for REST tests against a live server: the per-job routes and the error envelope."""

from __future__ import annotations

from typing import Any

from tests.support.server import LiveServer

#: Every route under ``/api/jobs/{id}``: (method, suffix).
JOB_ROUTES = [
    ("GET", ""),
    ("GET", "/events"),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("POST", "/cancel"),
    ("POST", "/restart"),
    ("GET", "/recovery"),
    ("GET", "/checkpoint"),
    ("GET", "/audit"),
]


def assert_envelope(body: Any, code: str) -> dict[str, Any]:
    """``body`` is the contract's error envelope with ``code`` and no traceback; its error."""
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["message"], str)
    assert "Traceback" not in error["message"]
    return error


async def create_via_rest(
    server: LiveServer, token: str, type: str = "research", **input: Any
) -> Any:
    """``POST /api/jobs``; the created job's snapshot (the status must be 201)."""
    status, job = await server.rest(
        "POST", "/api/jobs", token=token, json={"type": type, "input": input}
    )
    assert status == 201, job
    return job
