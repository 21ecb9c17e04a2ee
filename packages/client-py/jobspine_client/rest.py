"""The client's calls over REST (create, the actions, one job, a page of jobs): they work
whether or not the socket is connected at that moment; only live events need the socket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import attrs

from jobspine_client.errors import JobspineError
from jobspine_client.tokens import Tokens
from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_from_wire


@attrs.frozen
class JobPage:
    """``GET /api/jobs``: jobs newest first; ``next_cursor`` asks for the next page."""

    items: list[JobRecord]
    next_cursor: str | None


class Rest:
    def __init__(self, url: str, tokens: Tokens, timeout_s: float) -> None:
        self.url = url
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    def open(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def page(self, query: Mapping[str, str | int | None]) -> JobPage:
        params = {k: str(v) for k, v in query.items() if v is not None}
        body = await self.call("GET", "/api/jobs", params)
        return JobPage(
            items=[job_from_wire(j) for j in body["items"]], next_cursor=body.get("next_cursor")
        )

    async def job(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> JobRecord:
        return job_from_wire(await self.call(method, path, body=body))

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The JSON body of a successful answer; an error envelope raises JobspineError."""
        if self._http is None:
            raise JobspineError("unavailable", "the client is not connected (call connect)")
        token = self._tokens.current or await self._tokens.get()
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self._http.request(
                method, self.url + path, params=params, headers=headers, json=body
            ) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JobspineError("unavailable", f"{method} {path}: {exc!r}") from None
        if response.status >= 400:
            raise JobspineError.from_error(
                answer.get("error") if isinstance(answer, dict) else answer
            )
        return answer


__all__ = ["JobPage", "Rest"]
