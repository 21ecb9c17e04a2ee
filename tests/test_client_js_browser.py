"""``@jobspine/client`` in a real browser (headless Chromium, ``tests/support/browser.py``):
the committed ``dist/`` loads as ES modules through an import map (``socket.io-client`` by its
bare name, pointed at the library's ESM build), connects to a real server from another origin
(CORS), creates a job and watches it to completion; every seq arrives once and the final job
equals the server's snapshot. The page (``tests/browser/client_page.html``) POSTs each step
to ``/report``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.browser import chromium
from tests.support.node import ROOT, require_node
from tests.support.server import StartServer, connect_worker

CLIENT_DIR = ROOT / "packages" / "client-js"
PAGE = Path(__file__).resolve().parent / "browser" / "client_page.html"
SOCKET_IO_ESM = CLIENT_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"
WAIT_S = 30.0


class PageHost:
    """A static origin of its own for the page and the vendored modules, and a ``/report``
    endpoint whose lines the test awaits in order."""

    def __init__(self) -> None:
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.app = web.Application()
        self.app.router.add_get("/", self._page)
        self.app.router.add_get("/vendor/socket.io.esm.min.js", self._socket_io)
        self.app.router.add_static("/vendor/jobspine-client/", CLIENT_DIR / "dist")
        self.app.router.add_post("/report", self._report)

    async def _page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    async def _socket_io(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(SOCKET_IO_ESM)

    async def _report(self, request: web.Request) -> web.Response:
        await self.reports.put(json.loads(await request.text()))
        return web.Response(status=204)

    async def until(self, key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The first report holding ``key``, and every report before it; an ``error``
        report fails the test at once."""
        seen: list[dict[str, Any]] = []
        while True:
            line = await asyncio.wait_for(self.reports.get(), WAIT_S)
            assert "error" not in line, f"the page failed: {line['error']} (after {seen})"
            if key in line:
                return line, seen
            seen.append(line)


async def test_the_client_watches_a_job_in_a_real_browser(start_server: StartServer) -> None:
    require_node(CLIENT_DIR, "socket.io-client")  # its ESM build comes from node_modules
    server = await start_server()
    host = PageHost()
    runner = web.AppRunner(host.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    page_port = runner.addresses[0][1]
    try:
        token = server.token("browser-user")
        url = f"http://127.0.0.1:{page_port}/?server={server.url}&token={token}"
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(url)
            ready, before = await host.until("ready")
            assert [line["status"] for line in before if "status" in line] == ["connecting", "live"]
            job_id = ready["ready"]

            worker = await connect_worker(server)
            lease = (await worker.ok("claim", {"types": ["browser"]}))["lease"]
            for progress in (25, 50):
                await worker.ok(
                    "progress", {"job_id": job_id, "lease": lease, "progress": progress}
                )
            await worker.ok("complete", {"job_id": job_id, "lease": lease, "result": {"ok": True}})

            completed, events = await host.until("completed")
            status, snapshot = await server.rest("GET", f"/api/jobs/{job_id}", token=token)
            assert status == 200
            seqs = [line["event"] for line in events if "event" in line]
            assert seqs == list(range(2, snapshot["seq"] + 1))
            final = completed["completed"]
            assert {k: v for k, v in final.items() if k != "last_heartbeat_at"} == {
                k: v for k, v in snapshot.items() if k != "last_heartbeat_at"
            }
    finally:
        await runner.cleanup()
