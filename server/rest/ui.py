"""The dashboard at ``/ui/``: static files shipped in ``server/ui/`` and the transition table.

Not an API route: these routes are not in :data:`server.rest.routes.ROUTES` nor in the
OpenAPI document. Nothing here reads a token: the page carries its token in the URL's
fragment (never sent to the server) and sends it only as ``Authorization`` to ``/api`` and
in the Socket.IO ``auth`` packet. Every answer forbids framing, referrers and any origin but
this one (``Content-Security-Policy``), with the inline import map allowed by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from aiohttp import web

from jobspine_shared.states import states_document
from server.errors import NotFound
from server.rest.json_body import json_response

UI_ROOT = Path(__file__).resolve().parent.parent / "ui"
PREFIX = "/ui"
#: The only file types served, with their content types.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _script_hashes(html: str) -> str:
    """CSP sources for the inline import map(s) of ``html``."""
    return " ".join(f"'sha256-{_sha256(m.group(1))}'" for m in _IMPORT_MAP.finditer(html))


def security_headers(index_html: str) -> dict[str, str]:
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {_script_hashes(index_html)}".rstrip(),
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


class Dashboard:
    """Serves ``root`` (``server/ui`` by default) under ``/ui/``."""

    def __init__(self, root: Path = UI_ROOT) -> None:
        self.root = root.resolve()
        self.index = (self.root / "index.html").read_text(encoding="utf-8")
        self.headers = security_headers(self.index)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(f"{PREFIX}/")

    async def index_page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=self.index, content_type="text/html", charset="utf-8", headers=self.headers
        )

    async def states(self, request: web.Request) -> web.StreamResponse:
        return json_response(states_document(), headers=self.headers)

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        path = self.resolve(request.match_info["path"])
        headers = {**self.headers, "Content-Type": CONTENT_TYPES[path.suffix]}
        return web.FileResponse(path, headers=headers)

    def resolve(self, relative: str) -> Path:
        """The file ``relative`` names inside the root; ``not_found`` for anything else
        (other types, hidden names, ``..``, directories, links out of the root)."""
        parts = relative.split("/")
        if any(not part or part.startswith(".") for part in parts):
            raise NotFound("no such file")
        path = (self.root / relative).resolve()
        if (
            not path.is_relative_to(self.root)
            or path.suffix not in CONTENT_TYPES
            or not path.is_file()
        ):
            raise NotFound("no such file")
        return path

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.redirect, allow_head=False),
            web.get(f"{PREFIX}/", self.index_page),
            web.get(f"{PREFIX}/states.json", self.states, allow_head=False),
            web.get(PREFIX + "/{path:.+}", self.static_file),
        ]


__all__ = ["CONTENT_TYPES", "PREFIX", "UI_ROOT", "Dashboard", "security_headers"]
