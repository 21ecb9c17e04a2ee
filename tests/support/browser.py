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
import shutil
from collections.abc import AsyncIterator
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
    "chromium",
    "chromium_path",
    "connection",
    "open_dashboard",
    "page_errors",
    "page_requests",
    "screenshot",
]


async def create_in_form(page: Page, job_input: dict[str, Any], *, tags: str = "") -> str:
    """Fill the create form and submit it; the new row's job id."""
    await page.get_by_label("Type", exact=True).fill("research")
    await page.get_by_label("Input (JSON object)").fill(json.dumps(job_input))
    if tags:
        await page.get_by_label("Tags").fill(tags)
    await page.get_by_role("button", name="Create job").click()
    row = page.locator("table.jobs tbody tr").first
    await expect(row).to_be_visible(timeout=WAIT_MS)
    job_id = await row.get_attribute("data-job-id")
    assert job_id
    return job_id


def row_of(page: Page, job_id: str) -> Locator:
    return page.locator(f'table.jobs tbody tr[data-job-id="{job_id}"]')


async def progress_of(bar: Locator) -> float:
    value = await bar.get_attribute("aria-valuenow")
    assert value is not None
    return float(value)
