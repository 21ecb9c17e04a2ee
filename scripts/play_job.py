"""Play a client and a worker by hand, with the payloads of docs/protocol.md.

A user client creates a ``research`` job and prints every event it receives; a worker on
``/workers`` claims the job, reports progress, checkpoints and completes it::

    .venv/bin/python scripts/play_job.py --url http://127.0.0.1:8080 \\
        --user-token "$USER_TOKEN" --worker-token "$WORKER_TOKEN"

It is a walk-through of the protocol in thirty lines, not a worker to copy: see ``workers/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import socketio

WORKERS = "/workers"
WAIT_S = 10.0


async def play(url: str, user_token: str, worker_token: str) -> None:
    completed = asyncio.Event()
    client = socketio.AsyncClient()

    async def on_event(event: str, data: Any) -> None:
        print(f"client <- {event} seq={data['seq']} data={json.dumps(data['data'])[:120]}")
        if event == "job:completed":
            completed.set()

    client.on("*", on_event)
    await client.connect(url, auth={"token": user_token})
    worker = socketio.AsyncClient()
    await worker.connect(url, auth={"token": worker_token}, namespaces=[WORKERS])
    try:
        created = await client.call("job:create", {"type": "research", "input": {"query": "x"}})
        print(f"client -> job:create  ack ok={created['ok']}")
        job_id = created["job"]["id"]

        claim = await worker.call("claim", {"types": ["research"]}, namespace=WORKERS)
        lease = claim["lease"]
        print(f"worker -> claim       ack job={claim['job']['id']} lease={lease}")

        async def rpc(name: str, **fields: Any) -> None:
            ack = await worker.call(name, {"job_id": job_id, "lease": lease, **fields}, WORKERS)
            print(f"worker -> {name:<11} ack {json.dumps(ack)}")

        await rpc("heartbeat")
        for value in (25, 50, 75):
            await rpc("progress", progress=value, step=f"step {value // 25}/4")
        await rpc("checkpoint", data={"completed_steps": 3}, progress=75)
        await rpc("complete", result={"answer": 42})
        await asyncio.wait_for(completed.wait(), WAIT_S)
    finally:
        await worker.disconnect()
        await client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user-token", required=True)
    parser.add_argument("--worker-token", required=True)
    args = parser.parse_args()
    asyncio.run(play(args.url, args.user_token, args.worker_token))


if __name__ == "__main__":
    main()
