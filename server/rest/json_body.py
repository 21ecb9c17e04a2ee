"""JSON answers of the REST API in compact UTF-8: non-ASCII text is sent as is, not as
``\\uXXXX`` escapes (which made an emoji input cost up to 6 times its bytes in an answer)."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=dumps)


__all__ = ["dumps", "json_response"]
