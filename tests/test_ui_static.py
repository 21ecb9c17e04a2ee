"""The dashboard's server side, without a browser: the routes under /ui, what they refuse,
their headers, the transition table they export, the vendored modules, the --dev links, and
that the buttons the table allows are exactly the calls the server accepts."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobspine_shared.states import ENDED_STATES, USER_ACTIONS, JobState, states_document
from server.commands.user import RestartJob
from server.config import load_settings
from server.devmode import banner, dev_tokens
from server.errors import InvalidTransition
from server.rest.routes import ROUTES
from server.rest.ui import UI_ROOT
from server.service import JobRepository
from server.store.memory import MemoryJobStore
from server.store.rules import DELETABLE_STATES
from tests.support.jobs import ALICE, drive
from tests.support.node import CLIENT_JS, require_client_build
from tests.support.server import TEST_SECRET, LiveServer, StartServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def server(start_server: StartServer) -> LiveServer:
    return await start_server()


async def test_ui_redirects_to_the_index_with_a_strict_policy(server: LiveServer) -> None:
    async with server.http.get(f"{server.url}/ui", allow_redirects=False) as response:
        assert response.status == 308
        assert response.headers["Location"] == "/ui/"
    async with server.http.get(f"{server.url}/ui/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert html == (UI_ROOT / "index.html").read_text()
    # The inline import map runs by its hash; nothing else inline, nothing from elsewhere.
    import_map = re.search(r'<script type="importmap">(.*?)</script>', html, re.S)
    assert import_map is not None
    digest = base64.b64encode(hashlib.sha256(import_map.group(1).encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "http" not in policy
    assert "https://" not in html
    assert "http://" not in html


async def test_static_files_are_served_with_their_types(server: LiveServer) -> None:
    for path, content_type in [
        ("app/main.js", "text/javascript"),
        ("style.css", "text/css"),
        ("vendor/jobspine-client/index.js", "text/javascript"),
        ("vendor/socket.io-client/socket.io.esm.min.js", "text/javascript"),
    ]:
        async with server.http.get(f"{server.url}/ui/{path}") as response:
            assert response.status == 200, path
            assert response.content_type == content_type
            assert "Content-Security-Policy" in response.headers
            assert await response.read() == (UI_ROOT / path).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/ui/missing.js",
        "/ui/app",
        "/ui/app/",
        "/ui/../server/app.py",
        "/ui/%2e%2e/rest/ui.py",
        "/ui/app/%2e%2e/%2e%2e/rest/ui.py",
        "/ui/.hidden.js",
        "/ui/app/main.py",
    ],
)
async def test_nothing_outside_the_ui_files_is_served(server: LiveServer, path: str) -> None:
    async with server.http.get(f"{server.url}{path}", allow_redirects=False) as response:
        assert response.status == 404, path
        body = await response.json()
    assert body["error"]["code"] == "not_found"


async def test_states_json_is_the_shared_table(server: LiveServer) -> None:
    async with server.http.get(f"{server.url}/ui/states.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document == states_document()
    assert document["user_actions"] == {
        "pause": ["created", "running"],
        "resume": ["paused"],
        "cancel": ["created", "paused", "running"],
        "restart": ["cancelled", "failed"],
        "delete": ["cancelled", "completed", "failed"],
    }


def test_ui_routes_are_not_api_routes() -> None:
    paths = {route.path for route in ROUTES}
    assert not any(path.startswith("/ui") for path in paths)


def test_deletable_states_are_the_ended_states() -> None:
    assert (
        DELETABLE_STATES
        == ENDED_STATES
        == {
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
        }
    )


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("action", sorted(USER_ACTIONS))
async def test_the_buttons_the_table_allows_are_the_calls_the_server_accepts(
    state: JobState, action: str
) -> None:
    """The page shows a button exactly when the repository would accept the call."""
    repo = JobRepository(MemoryJobStore(backlog_size=200))
    job = (await drive(repo, state)).job
    calls = {
        "pause": repo.pause,
        "resume": repo.resume,
        "cancel": repo.cancel,
        "restart": lambda actor, job_id: repo.restart(actor, RestartJob(job_id=job_id)),
        "delete": repo.delete_job,
    }
    try:
        await calls[action](ALICE, job.id)
    except InvalidTransition:
        accepted = False
    else:
        accepted = True
    assert accepted == (state in USER_ACTIONS[action])


def test_the_vendored_modules_are_the_current_builds() -> None:
    """server/ui/vendor holds the client's build (packages/client-js/dist) and
    socket.io-client's ESM build byte for byte (python scripts/vendor_ui.py copies them)."""
    require_client_build("socket.io-client")
    done = subprocess.run(
        [sys.executable, "scripts/vendor_ui.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_dev_mode_prints_dashboard_links_for_u1_and_admin() -> None:
    settings = load_settings({"JWT_SECRET": TEST_SECRET, "PORT": "8123"}, dev=True)
    tokens = dev_tokens(settings)
    text = banner(settings)
    for sub in ("u1", "admin"):
        assert f"http://127.0.0.1:8123/ui/#token={tokens[sub]}" in text
    assert "/ui/#token=" + tokens["u2"] not in text


def test_the_page_scripts_type_check_strictly() -> None:
    """server/ui/app/*.js carry JSDoc types; tsc --strict checks them, and their use of
    @jobspine/client against its published declarations (dist/*.d.ts)."""
    node = require_client_build("typescript")
    tsc = CLIENT_JS / "node_modules" / "typescript" / "bin" / "tsc"
    done = subprocess.run(
        [node, str(tsc), "-p", str(UI_ROOT / "tsconfig.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
