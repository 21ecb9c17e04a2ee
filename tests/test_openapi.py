"""The OpenAPI document: the committed copy is current, it names exactly the routes the app
serves, and the app serves it without a token."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from server.rest.openapi import OPERATIONS, build_document, render_document
from server.rest.routes import ROUTES
from tests.support.server import running_server

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "openapi.json"


def test_the_committed_copy_is_current() -> None:
    assert COMMITTED.read_text() == render_document(), (
        "docs/openapi.json is stale: run python scripts/gen_openapi.py"
    )


def test_the_script_checks_and_rewrites_the_copy() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/gen_openapi.py", "--check"], cwd=ROOT, capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode()


def test_every_route_is_documented_and_nothing_else() -> None:
    served = {(route.method.lower(), route.path) for route in ROUTES}
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert served == documented


def test_every_reference_resolves_and_every_error_is_the_envelope() -> None:
    document = build_document()
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"#/components/schemas/')[1:]}:
        assert ref in schemas, ref
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (
                        method,
                        path,
                    )
            if operation["security"]:
                assert "401" in operation["responses"], (method, path)


async def test_served_without_a_token_with_a_request_id() -> None:
    async with (
        running_server() as server,
        server.http.get(server.url + "/api/openapi.json") as response,
    ):
        assert response.status == 200
        assert response.headers["X-Request-ID"]
        assert await response.json() == json.loads(render_document())


def test_every_query_parameter_the_views_read_is_documented() -> None:
    """A guard against drift: a view that reads a new query value must document it."""
    read = set()
    for module in ("views.py", "admin.py"):
        source = (ROOT / "server" / "rest" / module).read_text()
        read |= set(re.findall(r"query_(?:text|int)\(request, \"([a-z_]+)\"\)", source))
    documented = {
        p["name"]
        for operations in build_document()["paths"].values()
        for operation in operations.values()
        for p in operation["parameters"]
        if p.get("in") == "query"
    }
    assert read, "no query parameters found: the pattern is out of date"
    assert read <= documented, read - documented
