"""The dashboard at /ui in Debian's Chromium (headless, Playwright), against real processes:
``python -m server`` and the example worker ``python -m workers`` (tests/support/processes.py).

- a job created in the form appears in the list and its bar moves live;
- a job created while the list's first page is on its way stays listed once the page is in;
- SIGKILL of the worker: the supervisor pauses the job and the page shows the recovery panel
  (reason, checkpoint summary, attempts left); Resume continues it to completed;
- a user never sees another user's job (list, job view); the admin sees every user's;
- the page keeps working across a restart of the server (PostgreSQL, same port), no reload.

Every wait is a condition (Playwright's ``expect``) with a deadline; nothing sleeps. What a
row showed on the way (running, its bar rising) and what a job page's toolbar offered while
it ran are recorded in the page and asserted after the job moved on, so a slow browser
cannot miss a passing state; the worker is killed once the server holds its checkpoint.
``JOBSPINE_UI_SCREENSHOTS=docs/screenshots`` writes the README's screenshots.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Route, expect

from server.auth import mint_token
from tests.support.browser import (
    PHONE,
    WAIT_MS,
    chromium,
    connection,
    create_in_form,
    open_dashboard,
    page_errors,
    page_requests,
    progress_of,
    record_rows,
    record_toolbar,
    row_looks,
    row_of,
    screenshot,
    toolbar_looks,
)
from tests.support.jobs import wait_until
from tests.support.processes import SECRET, token, web_process, worker_process

pytestmark = pytest.mark.slow

#: Stale after 3 s without a heartbeat, looked for every 0.2 s (as tests/test_e2e_processes.py).
SERVER_ENV = {"HEARTBEAT_TIMEOUT_S": "3", "SUPERVISOR_INTERVAL_S": "0.2"}
WORKER_ENV = {"WORKER_HEARTBEAT_S": "0.2", "WORKER_TYPES": "research"}
#: Long enough to watch the bar move and to kill the worker after a checkpoint.
SLOW_INPUT = {"query": "solid-state batteries", "steps": 8, "step_seconds": 0.6}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def rest(url: str, method: str, path: str, sub: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {token(sub)}"}
        ) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def checkpointed_steps(url: str, job_id: str, steps: int) -> bool:
    """Whether the job's checkpoint holds ``completed_steps`` of ``steps`` or more."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}/api/jobs/{job_id}/checkpoint",
            headers={"Authorization": f"Bearer {token('u1')}"},
        ) as response,
    ):
        if response.status == 404:
            return False
        assert response.status == 200, await response.text()
        body = await response.json()
    return int(body["data"].get("completed_steps", 0)) >= steps


async def test_created_job_appears_and_its_bar_moves_live(browser: Browser) -> None:
    async with (
        web_process(**SERVER_ENV) as web,
        worker_process(web.url, **WORKER_ENV),
    ):
        # Two jobs no worker takes (only research runs), one of them held.
        await rest(web.url, "POST", "/api/jobs", "u1", {"type": "analysis", "tags": ["nightly"]})
        held = await rest(web.url, "POST", "/api/jobs", "u1", {"type": "trade"})
        await rest(web.url, "POST", f"/api/jobs/{held['id']}/pause", "u1")
        u1 = token("u1")
        page = await open_dashboard(browser, web.url, u1)
        assert "token=" not in page.url
        await record_rows(page)
        job_id = await create_in_form(page, SLOW_INPUT, tags="ui-test")
        row = row_of(page, job_id)
        bar = row.get_by_role("progressbar")
        await expect(bar).not_to_have_attribute("aria-valuenow", "0", timeout=WAIT_MS)
        await screenshot(page, "jobs-view")
        await expect(row.locator("[data-state]")).to_have_text("completed", timeout=WAIT_MS)
        await expect(bar).to_have_attribute("aria-valuenow", "100")
        # Live through watchUser(): while running, the value rose step by step without a
        # reload (what the row showed on the way, not caught in passing).
        running = [look for look in await row_looks(page, job_id) if look.state == "running"]
        rising = [look.progress for look in running]
        assert len({value for value in rising if 0 < value < 100}) >= 2, running
        assert rising == sorted(rising), running
        assert any(re.search(r"step \d+/8", look.step) for look in running), running
        # The snapshot the server holds says the same.
        job = await rest(web.url, "GET", f"/api/jobs/{job_id}", "u1")
        assert job["state"] == "completed"
        assert job["tags"] == ["ui-test"]
        # The state filter asks the server: none running now, one paused.
        await page.get_by_label("State", exact=True).select_option("running")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("table.jobs tbody tr")).to_have_count(0)
        await page.get_by_label("State", exact=True).select_option("paused")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("table.jobs tbody tr")).to_have_count(1)
        await expect(row_of(page, held["id"])).to_be_visible()
        # A failed job says its code and what can be done; Restart and Delete are offered.
        failing = await rest(web.url, "POST", "/api/jobs", "u1", {"type": "research"})
        await page.evaluate(f"location.hash = '#/jobs/{failing['id']}'")
        failure = page.get_by_role("alert").filter(has_text="Failed")
        await expect(failure).to_contain_text("handler_error", timeout=WAIT_MS)
        await expect(failure).to_contain_text("What you can do")
        toolbar = page.get_by_role("toolbar", name="Actions")
        await expect(toolbar.get_by_role("button")).to_have_text(["Restart", "Delete"])
        assert page_errors(page) == []
        # The token was in the link's fragment only: no request line or log shows it.
        assert u1 not in web.proc.output()


async def test_killed_worker_shows_the_recovery_panel_and_resume_completes(
    browser: Browser,
) -> None:
    async with web_process(**SERVER_ENV) as web:
        async with worker_process(web.url, **WORKER_ENV) as worker:
            page = await open_dashboard(browser, web.url, token("u1"))
            job_id = await create_in_form(page, SLOW_INPUT)
            await page.locator(f'a[href="#/jobs/{job_id}"]').click()
            await expect(page.locator("#job-title")).to_contain_text("research")
            await record_toolbar(page)
            # Two steps done (a fact that stays true, read from the server): its checkpoint
            # holds completed_steps 2 or more. Killed at once, mid-job.
            await wait_until(lambda: checkpointed_steps(web.url, job_id, 2), within=WAIT_MS / 1000)
            worker.kill(signal.SIGKILL)
            await worker.wait()
        bar = page.get_by_role("progressbar", name="Progress")
        # The page followed it live that far (and it moves no further without a worker).
        await expect(bar).to_have_attribute(
            "aria-valuenow", re.compile(r"^(2[5-9]|[3-9]\d)(\.\d+)?$"), timeout=WAIT_MS
        )

        panel = page.get_by_role("region", name="Recovery")
        await expect(panel).to_be_visible(timeout=WAIT_MS)
        await expect(panel).to_contain_text("stalled")
        await expect(panel).to_contain_text("completed_steps")
        await expect(panel.locator(".attempts-left")).to_have_text("Recovery attempts left: 2 of 3")
        await expect(panel.get_by_role("button", name="Resume")).to_be_visible()
        await expect(page.get_by_role("button", name="Pause")).to_have_count(0)
        await expect(page.locator("#job-state")).to_have_text("paused")
        # While it ran, the page offered Pause and Cancel, not Resume (what the toolbar
        # showed on the way, recorded in the page, not caught in passing).
        running = [look.buttons for look in await toolbar_looks(page) if look.state == "running"]
        assert running, await toolbar_looks(page)
        assert all(buttons == ("Pause", "Cancel") for buttons in running), running
        timeline = page.locator("ol.timeline")
        await expect(timeline.locator('li[data-type="job:paused"]')).to_contain_text("supervisor")
        await expect(page.locator(".checkpoint-json")).to_contain_text('"completed_steps"')
        await screenshot(page, "recovery-panel")
        paused_at = await progress_of(bar)

        async with worker_process(web.url, "worker-2", **WORKER_ENV):
            await panel.get_by_role("button", name="Resume").click()
            await expect(page.locator("#job-state")).to_have_text("completed", timeout=WAIT_MS)
        await expect(bar).to_have_attribute("aria-valuenow", "100")
        await expect(page.get_by_role("region", name="Recovery")).to_have_count(0)
        # The resumed attempt started from the checkpoint, not from zero.
        started = timeline.locator('li[data-type="job:started"]')
        await expect(started).to_have_count(2)
        await expect(started.nth(1)).to_contain_text("resumed from its checkpoint")
        assert paused_at >= 25
        # Replayed, then live: every seq once, in order, none missing.
        seqs = [
            int(s)
            for s in await timeline.locator("li").evaluate_all(
                "items => items.map(li => li.dataset.seq)"
            )
        ]
        job = await rest(web.url, "GET", f"/api/jobs/{job_id}", "u1")
        assert seqs == list(range(1, job["seq"] + 1))
        # Completed: only Delete is offered.
        toolbar = page.get_by_role("toolbar", name="Actions")
        await expect(toolbar.get_by_role("button")).to_have_text(["Delete"])
        audit = page.locator("table.audit")
        await expect(audit).to_contain_text("resume")
        await expect(audit).to_contain_text("recover")
        assert page_errors(page) == []


async def test_a_user_never_sees_another_users_job(browser: Browser) -> None:
    async with web_process() as web:
        theirs = await rest(web.url, "POST", "/api/jobs", "u1", {"type": "research", "input": {}})
        mine = await rest(web.url, "POST", "/api/jobs", "u2", {"type": "trade", "input": {}})

        page = await open_dashboard(browser, web.url, token("u2"))
        rows = page.locator("table.jobs tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-job-id", mine["id"])
        # A job u1 creates now does not appear live for u2 either.
        later = await rest(web.url, "POST", "/api/jobs", "u1", {"type": "research", "input": {}})
        await rest(web.url, "POST", f"/api/jobs/{mine['id']}/pause", "u2")
        await expect(rows.first.locator("[data-state]")).to_have_text("paused")
        await expect(rows).to_have_count(1)
        # Its page, by id, says not found (no detail leaks).
        await page.evaluate(f"location.hash = '#/jobs/{theirs['id']}'")
        await expect(page.get_by_role("alert")).to_contain_text("does not exist")
        await expect(page.locator("ol.timeline li")).to_have_count(0)
        await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
        assert "research" not in (await page.locator("main").inner_text())

        # The admin sees everyone's, with the owner; the user filter narrows it.
        admin = await open_dashboard(browser, web.url, token("admin", "admin"))
        admin_rows = admin.locator("table.jobs tbody tr")
        await expect(admin_rows).to_have_count(3)
        await expect(admin.locator(f'tr[data-job-id="{later["id"]}"]')).to_contain_text("u1")
        await admin.get_by_label("User").fill("u2")
        await admin.get_by_role("button", name="Filter").click()
        await expect(admin_rows).to_have_count(1)
        await expect(admin_rows.first).to_have_attribute("data-job-id", mine["id"])
        await admin.get_by_role("link", name="Admin").click()
        stats = admin.locator("table.stats")
        await expect(stats.locator('tr[data-state="created"] td.count')).to_have_text("2")
        await expect(stats.locator('tr[data-state="paused"] td.count')).to_have_text("1")
        await expect(admin.get_by_role("heading", name="Supervisor")).to_be_visible()
        await expect(admin.locator("section", has_text="Supervisor").locator("dl")).to_contain_text(
            "interval s"
        )
        assert page_errors(page) == []
        assert page_errors(admin) == []


@pytest.mark.postgres
async def test_the_page_recovers_after_the_server_restarts(
    browser: Browser, postgres_dsn: str
) -> None:
    env = {"DATABASE_URL": postgres_dsn}
    async with web_process(**env) as first:
        port = int(first.url.rsplit(":", 1)[1])
        created = await rest(first.url, "POST", "/api/jobs", "u1", {"type": "research"})
        page = await open_dashboard(browser, first.url, token("u1"))
        row = row_of(page, created["id"])
        await expect(row.locator("[data-state]")).to_have_text("created")
        first.proc.kill(signal.SIGKILL)
        await first.proc.wait()
        await expect(connection(page)).to_have_text("reconnecting", timeout=WAIT_MS)

    async with web_process(PORT=str(port), **env) as second:
        await expect(connection(page)).to_have_text("live", timeout=WAIT_MS)
        # Live again without a reload: a change made now reaches the same row.
        await rest(second.url, "POST", f"/api/jobs/{created['id']}/pause", "u1")
        await expect(row.locator("[data-state]")).to_have_text("paused", timeout=WAIT_MS)
        # The buttons follow the table: paused offers Resume and Cancel, which work.
        await row.get_by_role("link").click()
        toolbar = page.get_by_role("toolbar", name="Actions")
        await expect(toolbar.get_by_role("button")).to_have_text(["Resume", "Cancel"])
        await toolbar.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#job-state")).to_have_text("cancelled", timeout=WAIT_MS)
        await expect(toolbar.get_by_role("button")).to_have_text(["Restart", "Delete"])
        assert page_errors(page) == []


async def test_readable_on_a_phone_and_reachable_by_keyboard(browser: Browser) -> None:
    async with web_process() as web:
        await rest(web.url, "POST", "/api/jobs", "u1", {"type": "research", "input": {}})
        page = await open_dashboard(browser, web.url, token("u1"), viewport=PHONE)
        await expect(page.locator("table.jobs tbody tr")).to_have_count(1)
        # Nothing wider than the screen: no sideways scrolling at 390 px.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        # Tab reaches the job's link and Enter opens it.
        link = page.locator("table.jobs tbody tr a").first
        for _ in range(30):
            await page.keyboard.press("Tab")
            if await link.evaluate("node => node === document.activeElement"):
                break
        else:
            pytest.fail("the job's link is not reachable with Tab")
        await page.keyboard.press("Enter")
        await expect(page.locator("#job-title")).to_contain_text("research")
        await expect(page.get_by_role("button", name="Pause")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # No external fonts or scripts: every request went to this server.
        assert all(url.startswith((web.url, "data:")) for url in page_requests(page))
        assert page_errors(page) == []


async def test_the_form_sends_v2_fields_and_refusals_read_in_plain_words(browser: Browser) -> None:
    async with web_process() as web:
        page = await open_dashboard(browser, web.url, token("u1"))
        rows = page.locator("table.jobs tbody tr")
        form = page.locator("form.create")
        await page.get_by_label("Priority").fill("7")
        await page.get_by_label("Max attempts").fill("3")
        await page.get_by_label("Backoff (s)").fill("2")
        await page.get_by_label("Idempotency key").fill("nightly-1")
        job_id = await create_in_form(page, {"steps": 2}, tags="batch:7, nightly")
        job = await rest(web.url, "GET", f"/api/jobs/{job_id}", "u1")
        assert job["priority"] == 7
        assert job["tags"] == ["batch:7", "nightly"]
        assert job["retry"]["max_attempts"] == 3
        assert job["retry"]["backoff_s"] == 2
        assert job["idempotency_key"] == "nightly-1"
        assert job["input"] == {"steps": 2}

        # Caught in the page: nothing is sent.
        await page.get_by_label("Input (JSON object)").fill("{nope")
        await page.get_by_role("button", name="Create job").click()
        await expect(form.get_by_role("alert")).to_contain_text("not valid JSON")
        await page.get_by_label("Input (JSON object)").fill("[1, 2]")
        await page.get_by_role("button", name="Create job").click()
        await expect(form.get_by_role("alert")).to_contain_text("must be a JSON object")
        # Refused by the server, said in words.
        await page.get_by_label("Input (JSON object)").fill("{}")
        await page.get_by_label("Idempotency key").fill("")
        await page.get_by_label("Priority").fill("500")
        await page.get_by_role("button", name="Create job").click()
        await expect(form.get_by_role("alert")).to_contain_text("The server refused it")
        await expect(form.get_by_role("alert")).to_contain_text("priority")
        await expect(rows).to_have_count(1)

        # A refusal of an action: the job changes between the page's view and the click.
        await page.locator(f'a[href="#/jobs/{job_id}"]').click()
        toolbar = page.get_by_role("toolbar", name="Actions")
        await expect(toolbar.get_by_role("button")).to_have_text(["Pause", "Cancel"])
        await toolbar.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#job-state")).to_have_text("cancelled")
        await expect(toolbar.get_by_role("button")).to_have_text(["Restart", "Delete"])

        async def restart_first(route: Route) -> None:
            # Someone else restarts the job just before the page's DELETE reaches the server.
            if route.request.method == "DELETE":
                await rest(web.url, "POST", f"/api/jobs/{job_id}/restart", "u1")
            await route.continue_()

        await page.route(f"**/api/jobs/{job_id}", restart_first)
        await toolbar.get_by_role("button", name="Delete").click()
        await expect(page.locator("p.refusal")).to_have_text(
            "This job can't be deleted now: it is created."
        )
        await expect(page.locator("#job-state")).to_have_text("created")
        audit = page.locator("table.audit")
        await expect(audit).to_contain_text("cancel")
        await expect(audit).to_contain_text("restart")
        # Cancelled again, it is deleted: back to the list, which no longer has it.
        await page.unroute(f"**/api/jobs/{job_id}")
        await toolbar.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#job-state")).to_have_text("cancelled")
        await toolbar.get_by_role("button", name="Delete").click()
        await expect(page.get_by_role("heading", name="Your jobs")).to_be_visible()
        await expect(rows).to_have_count(0)
        assert page_errors(page) == []


async def test_a_job_created_while_the_first_page_loads_stays_listed(browser: Browser) -> None:
    async with web_process() as web:
        older = await rest(web.url, "POST", "/api/jobs", "u1", {"type": "trade"})
        page = await open_dashboard(browser, web.url, token("u1"))
        rows = page.locator("table.jobs tbody tr")
        await expect(rows).to_have_count(1)
        # The first page is asked again (Filter); its answer is read at once and held.
        answer_read = asyncio.Event()
        release = asyncio.Event()

        async def hold_the_page(route: Route) -> None:
            answer = await route.fetch()
            answer_read.set()
            await release.wait()
            await route.fulfill(response=answer)

        await page.route(re.compile(r"/api/jobs\?limit=20(&|$)"), hold_the_page)
        # The rows drawn before it, so that the held answer's own rows can be told apart.
        await rows.evaluate_all("rows => rows.forEach(row => { row.dataset.before = 'yes'; })")
        await page.get_by_role("button", name="Filter").click()
        await asyncio.wait_for(answer_read.wait(), WAIT_MS / 1000)
        # Created after the answer was read: its live event reaches the page first.
        created = await rest(web.url, "POST", "/api/jobs", "u1", {"type": "analysis"})
        await expect(row_of(page, created["id"])).to_have_count(1, timeout=WAIT_MS)
        release.set()
        redrawn = page.locator(f'tr[data-job-id="{older["id"]}"]:not([data-before])')
        await expect(redrawn).to_have_count(1, timeout=WAIT_MS)
        # The answer is applied: the union, newest first.
        shown = await rows.evaluate_all("rows => rows.map(row => row.dataset.jobId)")
        assert shown == [created["id"], older["id"]]
        await page.unroute(re.compile(r"/api/jobs\?limit=20(&|$)"))
        assert page_errors(page) == []


async def test_pages_of_twenty_and_the_tag_filter(browser: Browser) -> None:
    async with web_process() as web:
        for n in range(23):
            tags = ["odd"] if n % 2 else ["even"]
            await rest(web.url, "POST", "/api/jobs", "u1", {"type": "trade", "tags": tags})
        page = await open_dashboard(browser, web.url, token("u1"))
        rows = page.locator("table.jobs tbody tr")
        await expect(rows).to_have_count(20)
        newest = await rows.first.get_attribute("data-job-id")
        await page.get_by_role("button", name="Older").click()
        await expect(rows).to_have_count(3)
        await expect(page.get_by_role("button", name="Older")).to_be_disabled()
        await page.get_by_role("button", name="Newer").click()
        await expect(rows).to_have_count(20)
        await expect(rows.first).to_have_attribute("data-job-id", newest or "")
        await page.get_by_label("Tag", exact=True).fill("odd")
        await page.get_by_role("button", name="Filter").click()
        await expect(rows).to_have_count(11)
        await expect(page.get_by_role("button", name="Older")).to_be_disabled()


async def test_paste_box_without_a_token_and_session_expiry(browser: Browser) -> None:
    async with web_process(JWT_LEEWAY_S="0") as web:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{web.url}/ui/")
        sign_in = page.get_by_role("region", name="Sign in")
        await expect(sign_in).to_be_visible()
        await sign_in.get_by_label("Token").fill("not a token")
        await sign_in.get_by_role("button", name="Use this token").click()
        await expect(sign_in.get_by_role("alert")).to_contain_text("not a JWT")
        short = mint_token(SECRET, sub="u1", role="user", ttl_s=10)
        await sign_in.get_by_label("Token").fill(short)
        await sign_in.get_by_role("button", name="Use this token").click()
        await expect(connection(page)).to_have_text("live", timeout=WAIT_MS)
        await expect(sign_in).to_be_hidden()
        # The server ends the socket at exp; the page says so and offers the box again.
        await expect(connection(page)).to_have_text("session expired", timeout=WAIT_MS)
        await expect(sign_in).to_be_visible()
        await expect(sign_in.get_by_role("alert")).to_contain_text("expired")
        await context.close()
