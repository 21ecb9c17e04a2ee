"""``@jobspine/client`` in a real browser (headless Chromium, ``tests/support/browser.py``):
its build (``dist/``) loads as ES modules through an import map (``socket.io-client`` by its
bare name, pointed at the library's ESM build), connects to a real server from another origin
(CORS), creates a job and watches it to completion; every seq arrives once and the final job
equals the server's snapshot. The page (``tests/browser/client_page.html``) POSTs each step
to ``/report``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import expect

from tests.support.browser import WAIT_MS, chromium
from tests.support.docs import doc_block
from tests.support.node import CLIENT_BUILD, CLIENT_JS, require_client_build
from tests.support.server import StartServer, connect_worker

PAGE = Path(__file__).resolve().parent / "browser" / "client_page.html"
SOCKET_IO_ESM = CLIENT_JS / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"
WAIT_S = 30.0
SECTION = "## In a browser (TypeScript)"
#: The example's server URL, replaced by the test server's.
EXAMPLE_URL = "https://jobs.example.com"


def docs_example() -> str:
    """The first ``html`` block of docs/clients.md's browser section, as written."""
    return doc_block(SECTION, "html")


class PageHost:
    """A static origin of its own for the page and the vendored modules, and a ``/report``
    endpoint whose lines the test awaits in order."""

    def __init__(self, page: str | None = None, token: str = "") -> None:
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.page = page
        self.token = token
        require_client_build("socket.io-client")  # the ESM build comes from node_modules
        self.app = web.Application()
        self.app.router.add_get("/", self._page)
        self.app.router.add_get("/my-backend/jobspine-token", self._token)
        self.app.router.add_get("/vendor/socket.io-client/socket.io.esm.min.js", self._socket_io)
        self.app.router.add_static("/vendor/jobspine-client/", CLIENT_BUILD)
        self.app.router.add_post("/report", self._report)

    async def _page(self, _: web.Request) -> web.StreamResponse:
        if self.page is not None:
            return web.Response(text=self.page, content_type="text/html")
        return web.FileResponse(PAGE)

    async def _token(self, _: web.Request) -> web.Response:
        return web.Response(text=self.token)

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


@asynccontextmanager
async def hosted(host: PageHost) -> AsyncIterator[str]:
    """``host`` on a free port of its own (another origin than the server): its URL."""
    runner = web.AppRunner(host.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_the_client_watches_a_job_in_a_real_browser(start_server: StartServer) -> None:
    server = await start_server()
    host = PageHost()
    token = server.token("browser-user")
    async with hosted(host) as origin:
        url = f"{origin}/?server={server.url}&token={token}"
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


def test_the_docs_example_is_about_twenty_lines() -> None:
    assert len([line for line in docs_example().splitlines() if line.strip()]) <= 25


async def test_the_docs_browser_example_runs_as_written(start_server: StartServer) -> None:
    """The example of docs/clients.md, its server URL aside: status in the title, the bar
    and state follow the job, and a reload resumes the same job from localStorage."""
    server = await start_server()
    example = docs_example()
    assert EXAMPLE_URL in example
    host = PageHost(example.replace(EXAMPLE_URL, server.url), server.token("docs-user"))
    async with hosted(host) as origin, chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(origin + "/")
        await expect(page).to_have_title("live", timeout=WAIT_MS)
        state = page.locator("#state")
        await expect(state).to_have_text(re.compile(r"^created"), timeout=WAIT_MS)
        job_id = await page.evaluate("localStorage.getItem('job')")

        worker = await connect_worker(server)
        claim = await worker.ok("claim", {"types": ["research"]})
        assert claim["job"]["id"] == job_id
        fenced = {"job_id": job_id, "lease": claim["lease"]}
        await worker.ok("progress", {**fenced, "progress": 40, "step": "step 2/5"})
        await expect(state).to_have_text("running step 2/5", timeout=WAIT_MS)
        value = await page.locator("progress").evaluate("bar => bar.value")
        assert value == 40

        await page.reload()
        await expect(page).to_have_title("live", timeout=WAIT_MS)
        await expect(state).to_have_text("running step 2/5", timeout=WAIT_MS)
        assert await page.evaluate("localStorage.getItem('job')") == job_id
        await worker.ok("complete", {**fenced, "result": {"answer": 42}})
        await expect(state).to_have_text(re.compile(r"^completed"), timeout=WAIT_MS)
        assert errors == []
