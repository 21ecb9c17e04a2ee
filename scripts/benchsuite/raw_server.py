"""The baseline: bare python-socketio on aiohttp, doing what jobspine does minus jobspine.

``python -m scripts.benchsuite.raw_server --port P`` serves:

- ``/workers``: ``heartbeat`` acks ``{ok, pause_requested}``; ``progress`` emits
  ``job:progress`` to the room of its ``job_id`` on ``/`` and acks ``{ok}``.
- ``/``: ``job:subscribe`` joins the room of ``job_id`` and acks ``{ok, job, events,
  recovered}`` where ``events`` are ``count`` ready-made events (the replay baseline).
- ``GET /readyz``: 200.

No authentication, validation, store or bookkeeping: each number it gives is what the
libraries cost on their own.
"""

from __future__ import annotations

import argparse
import datetime
import resource
from typing import Any

import socketio
from aiohttp import web

USER_NAMESPACE = "/"
WORKER_NAMESPACE = "/workers"


def _event(job_id: str, seq: int) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "user_id": "u1",
        "seq": seq,
        "epoch": "e" * 32,
        "type": "job:progress",
        "at": datetime.datetime.now(datetime.UTC).isoformat(),
        "data": {"progress": 50.0, "step": f"s{seq}"},
    }


def build_app() -> web.Application:
    sio: Any = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)

    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> None:
        return None

    async def heartbeat(sid: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "pause_requested": False}

    async def progress(sid: str, payload: dict[str, Any]) -> dict[str, Any]:
        job_id = str(payload.get("job_id"))
        event = {
            "job_id": job_id,
            "user_id": "u1",
            "seq": 1,
            "epoch": "e" * 32,
            "type": "job:progress",
            "at": datetime.datetime.now(datetime.UTC).isoformat(),
            "data": {"progress": payload.get("progress"), "step": payload.get("step")},
        }
        await sio.emit("job:progress", event, to=f"job:{job_id}", namespace=USER_NAMESPACE)
        return {"ok": True}

    async def subscribe(sid: str, payload: dict[str, Any]) -> dict[str, Any]:
        job_id = str(payload.get("job_id"))
        await sio.enter_room(sid, f"job:{job_id}", namespace=USER_NAMESPACE)
        count = int(payload.get("count") or 0)
        events = [_event(job_id, seq) for seq in range(1, count + 1)]
        return {"ok": True, "job": {"id": job_id}, "events": events, "recovered": True}

    sio.on("connect", connect, namespace=WORKER_NAMESPACE)
    sio.on("connect", connect, namespace=USER_NAMESPACE)
    sio.on("heartbeat", heartbeat, namespace=WORKER_NAMESPACE)
    sio.on("progress", progress, namespace=WORKER_NAMESPACE)
    sio.on("job:subscribe", subscribe, namespace=USER_NAMESPACE)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    web.run_app(build_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
