"""Debian's Chromium, headless, driven by Playwright (the PyPI package; no browser download:
``executable_path`` is the system's ``/usr/bin/chromium``), for the dashboard's tests.

``scripts/test`` installs the ``chromium`` package when it is missing
(``scripts/lib/bootstrap.sh`` ``ensure_chromium``). Without it the browser tests skip,
except under ``CI=true``, where they fail. ``JOBSPINE_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, async_playwright, expect

CHROMIUM = os.environ.get("JOBSPINE_CHROMIUM", "/usr/bin/chromium")
#: The sizes the dashboard must be readable at.
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
#: Generous bound for one condition in the browser; a healthy run takes well under a second.
WAIT_MS = 30_000
#: Set to a directory (docs/screenshots) to have the browser tests write their screenshots.
SCREENSHOTS_ENV = "JOBSPINE_UI_SCREENSHOTS"


def chromium_path() -> str:
    """The Chromium binary; skips (fails under ``CI=true``) when there is none."""
    found = shutil.which(CHROMIUM)
    if found is None:
        message = f"{CHROMIUM} not found: install Debian's chromium package (scripts/test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (required when CI=true)", pytrace=False)
        pytest.skip(message)
    return found


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_dashboard(
    browser: Browser,
    base_url: str,
    token: str,
    route: str = "",
    *,
    viewport: ViewportSize = DESKTOP,
) -> Page:
    """A new page (its own context: its own sessionStorage) on the dashboard, signed in
    with ``token`` through the link ``--dev`` prints, once the connection reads ``live``.
    Uncaught page errors fail the test that reads :func:`page_errors`."""
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _ERRORS[id(page)] = errors
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    _REQUESTS[id(page)] = requests
    await page.goto(f"{base_url}/ui/#token={token}{route and '&' + route}")
    await expect(connection(page)).to_have_text("live", timeout=WAIT_MS)
    return page


_ERRORS: dict[int, list[str]] = {}
_REQUESTS: dict[int, list[str]] = {}


def page_errors(page: Page) -> list[str]:
    return _ERRORS.get(id(page), [])


def page_requests(page: Page) -> list[str]:
    """Every URL the page requested (fonts, scripts, ``data:`` too), in order."""
    return _REQUESTS.get(id(page), [])


def connection(page: Page) -> Locator:
    """The role=status element of the header: ``live``, ``reconnecting``, ``session expired``."""
    return page.locator("#connection")


async def screenshot(page: Page, name: str) -> None:
    """Write ``<JOBSPINE_UI_SCREENSHOTS>/<name>.png`` when that variable is set."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        # Playwright creates the folder.
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


__all__ = [
    "DESKTOP",
    "PHONE",
    "WAIT_MS",
    "RowLook",
    "ToolbarLook",
    "chromium",
    "chromium_path",
    "connection",
    "open_dashboard",
    "page_errors",
    "page_requests",
    "record_rows",
    "record_toolbar",
    "row_looks",
    "screenshot",
    "toolbar_looks",
]


async def create_in_form(page: Page, job_input: dict[str, Any], *, tags: str = "") -> str:
    """Fill the create form and submit it once the list's first page is in; the new job's
    id, from the row the form's ``Created <type> <id>.`` names (not merely the first row:
    older jobs are there before the new one is)."""
    # A page load answered after the create would replace the rows without the new one.
    await expect(page.locator(".pager .page-label")).to_have_text(
        re.compile(r"^page \d+$"), timeout=WAIT_MS
    )
    await page.get_by_label("Type", exact=True).fill("research")
    await page.get_by_label("Input (JSON object)").fill(json.dumps(job_input))
    if tags:
        await page.get_by_label("Tags").fill(tags)
    await page.get_by_role("button", name="Create job").click()
    created = page.locator("form.create p.note")
    await expect(created).to_have_text(_CREATED, timeout=WAIT_MS)
    found = _CREATED.fullmatch(await created.inner_text())
    assert found, await created.inner_text()
    row = page.locator(f'table.jobs tbody tr[data-job-id^="{found[1]}"]')
    await expect(row).to_have_count(1)
    job_id = await row.get_attribute("data-job-id")
    assert job_id
    return job_id


#: What the create form says once the job exists: its type and the first 8 of its id.
_CREATED = re.compile(r"Created \S+ ([0-9a-f]{8})\.")


@dataclass(frozen=True)
class RowLook:
    """What a row of the jobs table showed once: its state, bar and step."""

    state: str
    progress: float
    step: str


async def record_rows(page: Page) -> None:
    """From now on, each look of each row of the jobs table is kept in the page (each
    render, as the page's events change it), for :func:`row_looks`: what a row showed on
    the way, asserted after the job is done, instead of catching a passing state in time."""
    await page.locator("table.jobs tbody").wait_for(state="attached", timeout=WAIT_MS)
    await page.evaluate(_RECORD_ROWS)


async def row_looks(page: Page, job_id: str) -> list[RowLook]:
    """The looks of ``job_id``'s row since :func:`record_rows` (a reload would lose them)."""
    looks = await page.evaluate("id => window.__rowLooks.get(id) ?? []", job_id)
    return [RowLook(look["state"], float(look["progress"]), look["step"]) for look in looks]


_RECORD_ROWS = """() => {
  const body = document.querySelector("table.jobs tbody");
  const looks = new Map();
  window.__rowLooks = looks;
  const look = (tr) => {
    const id = tr.dataset.jobId;
    const state = tr.querySelector("[data-state]");
    const bar = tr.querySelector("[role=progressbar]");
    const step = tr.querySelector("td.step");
    if (!id || !state || !bar) return;
    const seen = { state: state.dataset.state, progress: bar.getAttribute("aria-valuenow"),
                   step: step ? step.textContent : "" };
    if (!looks.has(id)) looks.set(id, []);
    const kept = looks.get(id);
    const last = kept.at(-1);
    if (!last || last.state !== seen.state || last.progress !== seen.progress
        || last.step !== seen.step) kept.push(seen);
  };
  for (const tr of body.querySelectorAll("tr")) look(tr);
  new MutationObserver((records) => {
    const touched = new Set();
    for (const record of records) {
      const tr = record.target.closest ? record.target.closest("tr") : null;
      if (tr && body.contains(tr)) touched.add(tr);
      for (const node of record.addedNodes) if (node.tagName === "TR") touched.add(node);
    }
    for (const tr of touched) look(tr);
  }).observe(body, { childList: true, subtree: true });
}"""


@dataclass(frozen=True)
class ToolbarLook:
    """What a job's page showed once: the job's state and the buttons its toolbar offered."""

    state: str
    buttons: tuple[str, ...]


async def record_toolbar(page: Page) -> None:
    """From now on, each look of the job page's state and toolbar is kept in the page, for
    :func:`toolbar_looks` (what it offered while running, asserted once the job moved on)."""
    await page.locator("#job-state").wait_for(state="attached", timeout=WAIT_MS)
    await page.evaluate(_RECORD_TOOLBAR)


async def toolbar_looks(page: Page) -> list[ToolbarLook]:
    looks = await page.evaluate("() => window.__toolbarLooks")
    return [ToolbarLook(look["state"], tuple(look["buttons"])) for look in looks]


_RECORD_TOOLBAR = """() => {
  const looks = [];
  window.__toolbarLooks = looks;
  const look = () => {
    const state = document.querySelector("#job-state");
    const toolbar = document.querySelector('[role=toolbar][aria-label="Actions"]');
    if (!state || !toolbar) return;
    const buttons = [...toolbar.querySelectorAll("button")].map((b) => b.textContent.trim());
    const seen = { state: state.textContent.trim(), buttons };
    const last = looks.at(-1);
    if (!last || last.state !== seen.state || last.buttons.join() !== seen.buttons.join())
      looks.push(seen);
  };
  look();
  new MutationObserver(look).observe(document.body, { childList: true, subtree: true,
                                                       characterData: true });
}"""


def row_of(page: Page, job_id: str) -> Locator:
    return page.locator(f'table.jobs tbody tr[data-job-id="{job_id}"]')


async def progress_of(bar: Locator) -> float:
    value = await bar.get_attribute("aria-valuenow")
    assert value is not None
    return float(value)
