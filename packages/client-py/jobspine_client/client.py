"""``JobspineClient``: watch jobs live and act on them, across reconnects and restarts.

Everything the socket delivers goes through one queue that one task drains in order: a new
session's re-sync (one ``job:sync`` with every cursor, then ``job:subscribe`` per watched job
to join its room), live events (each watch applies the next seq, drops what it has seen, and
asks for a replay on a gap or another epoch), new watches. So replays and live events that
race them are merged without duplicates, and listeners see one order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from jobspine_client.connection import Connection, Session, SocketFactory, Status, default_socket
from jobspine_client.errors import JobspineError
from jobspine_client.rest import JobPage, Rest
from jobspine_client.storage import Storage, WatchStore
from jobspine_client.stream import JobStream, Verdict
from jobspine_client.tokens import Tokens, TokenSource
from jobspine_client.watch import Emitter, Listener, UserWatch, Watch
from jobspine_shared.backoff import Backoff
from jobspine_shared.events import EventType
from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_from_wire

log = logging.getLogger("jobspine_client")

#: Most jobs in one ``job:sync`` (the server's bound).
SYNC_BATCH = 500
#: ``job:subscribe`` calls in flight during a re-sync (the server allows 32 per socket).
SUBSCRIBES_IN_FLIGHT = 8
#: Most jobs :meth:`JobspineClient.watch_user` lists at a (re)connect.
USER_LIST_LIMIT = 1000


class JobspineClient:
    """A user's client of one jobspine server (see docs/clients.md)."""

    def __init__(
        self,
        url: str,
        token: TokenSource,
        storage: Storage | None = None,
        *,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 15.0,
        connect_timeout_s: float = 10.0,
        ack_timeout_s: float = 10.0,
        socket_factory: SocketFactory = default_socket,
    ) -> None:
        self.url = url.rstrip("/")
        self._store = WatchStore(storage, self.url)
        self.ack_timeout_s = ack_timeout_s
        self._tokens = Tokens(token)
        self._emitter = Emitter()
        self._status: Status | None = None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._watches: dict[str, list[Watch]] = {}
        self._user_watches: list[UserWatch] = []
        self._live = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rest = Rest(self.url, self._tokens, ack_timeout_s)
        self.connection = Connection(
            self.url,
            self._tokens,
            push_events=[kind.value for kind in EventType],
            on_session=lambda session: self._inbox.put_nowait(("session", session)),
            on_push=lambda session, name, data: self._inbox.put_nowait(("event", (session, data))),
            on_status=self._connection_status,
            socket_factory=socket_factory,
            backoff=Backoff(reconnect_initial_s, reconnect_max_s),
            connect_timeout_s=connect_timeout_s,
            ack_timeout_s=ack_timeout_s,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def status(self) -> Status | None:
        return self._status

    def on(self, name: str, listener: Listener) -> Callable[[], None]:
        """``status``: ``connecting``, ``live``, ``reconnecting`` or ``expired``."""
        return self._emitter.on(name, listener)

    async def connect(self) -> None:
        """Connect and re-sync; returns once live. A refused token or an unreachable server
        (within ``connect_timeout_s``) raises :class:`JobspineError` and closes the client."""
        if self._first is None:
            self._first = asyncio.get_running_loop().create_future()
            self._rest.open()
            self._tasks = [
                asyncio.create_task(self._run_connection(), name="jobspine connection"),
                asyncio.create_task(self._drain(), name="jobspine inbox"),
            ]
        try:
            await asyncio.wait_for(asyncio.shield(self._first), self.connection.connect_timeout_s)
        except TimeoutError:
            await self.close()
            raise JobspineError("unavailable", f"cannot reach {self.url}") from None
        except JobspineError:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnect; the connection's loop ends by itself (closing its socket once), then
        the inbox task stops. Stored cursors stay."""
        await self.connection.close()
        tasks, self._tasks = self._tasks, []
        if tasks:
            running, draining = tasks
            done, _ = await asyncio.wait({running}, timeout=self.connection.connect_timeout_s)
            for task in (draining,) if done else (running, draining):
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._rest.close()

    async def __aenter__(self) -> JobspineClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _run_connection(self) -> None:
        await self.connection.run()
        failure = self.connection.failure
        if failure is not None and self._first is not None and not self._first.done():
            self._first.set_exception(failure)

    def _connection_status(self, status: Status) -> None:
        if status is not Status.LIVE:
            self._live.clear()
            self._set_status(status)

    def _set_status(self, status: Status) -> None:
        if status is not self._status:
            self._status = status
            self._emitter.emit("status", status)

    # -- watching -----------------------------------------------------------------------------

    def watch(self, job_id: str) -> Watch:
        """Watch one job; it starts from the stored cursor and snapshot when there is one."""
        watch = Watch(self, JobStream(job_id, self._store.load(job_id)))
        self._watches.setdefault(job_id, []).append(watch)
        self._inbox.put_nowait(("watch", watch))
        return watch

    def watch_user(self) -> UserWatch:
        """Every job of the user (up to :data:`USER_LIST_LIMIT` listed at each connect)."""
        watch = UserWatch(self)
        self._user_watches.append(watch)
        self._inbox.put_nowait(("user", watch))
        return watch

    async def _unwatch(self, watch: Watch) -> None:
        """A closed watch's stored cursor goes too (closing the client keeps them)."""
        watch.closed = True
        self._store.forget(watch.job_id)
        others = self._watches.get(watch.job_id, [])
        if watch in others:
            others.remove(watch)
        if not others:
            self._watches.pop(watch.job_id, None)
            session = self.connection.session
            if session is not None:
                with contextlib.suppress(JobspineError):
                    await session.call(
                        "job:unsubscribe", {"job_id": watch.job_id}, self.ack_timeout_s
                    )

    async def _unwatch_user(self, watch: UserWatch) -> None:
        watch.closed = True
        if watch in self._user_watches:
            self._user_watches.remove(watch)

    # -- the inbox ----------------------------------------------------------------------------

    async def _drain(self) -> None:
        while True:
            kind, item = await self._inbox.get()
            try:
                await self._handle(kind, item)
            except JobspineError as exc:
                log.info("re-sync interrupted (%s); the next session resumes it", exc)

    async def _handle(self, kind: str, item: Any) -> None:
        session = self.connection.session
        if session is None:
            return  # whatever it was, the next session's re-sync covers it
        if kind == "session":
            if item is session:
                await self._resync(session)
        elif kind == "event":
            event_session, data = item
            if event_session is session and isinstance(data, Mapping):
                await self._on_event(session, data)
        elif self._live.is_set():
            if kind == "watch" and not item.closed:
                await self._subscribe(session, item.job_id)
            elif kind == "user" and not item.closed:
                await self._list_user(item)

    async def _resync(self, session: Session) -> None:
        """After (re)connecting: one ``job:sync`` with every known cursor, then each watched
        job's room joined with ``job:subscribe``, and user watches listed; then live."""
        streams = self._all_streams()
        cursors = {s.job_id: s.last_seq for s in streams if s.last_seq is not None}
        pending = list(dict.fromkeys(cursors))
        while pending:
            batch, pending = pending[:SYNC_BATCH], pending[SYNC_BATCH:]
            ack = await session.call_patiently(
                "job:sync",
                {
                    "cursors": {job_id: cursors[job_id] for job_id in batch},
                    "epochs": {s.job_id: s.epoch for s in streams if s.job_id in batch and s.epoch},
                },
            )
            for job_id, slot in ack.get("results", {}).items():
                if isinstance(slot, Mapping) and slot.get("truncated"):
                    pending.append(job_id)
                else:
                    self._apply_slot(job_id, slot)
        slots = asyncio.Semaphore(SUBSCRIBES_IN_FLIGHT)
        try:
            async with asyncio.TaskGroup() as group:  # a few subscribes in flight at once
                for job_id in list(self._watches):
                    group.create_task(self._subscribe(session, job_id, slots))
        except* JobspineError as failed:  # the session ended: the next one starts over
            raise failed.exceptions[0] from None
        for user_watch in list(self._user_watches):
            await self._list_user(user_watch)
        self._live.set()
        self._set_status(Status.LIVE)
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    def _all_streams(self) -> list[JobStream]:
        streams = [w.stream for watches in self._watches.values() for w in watches]
        return streams + [s for u in self._user_watches for s in u.streams.values()]

    def _apply_slot(self, job_id: str, slot: Any) -> None:
        """A replay (``{recovered, events, job}``) or ``{error}`` for every watch of the job."""
        if isinstance(slot, Mapping) and "job" in slot:
            for watch in list(self._watches.get(job_id, [])):
                watch._replayed(watch.stream.on_replay(slot))
                self._store.save(watch.stream.job)
            for user_watch in self._user_watches:
                if job_id in user_watch.streams:
                    replayed = user_watch.streams[job_id].on_replay(slot)
                    if replayed.changed or replayed.first:
                        user_watch._changed(user_watch.streams[job_id].job)
            return
        error = JobspineError.from_error(slot.get("error") if isinstance(slot, Mapping) else slot)
        for watch in self._watches.pop(job_id, []):
            watch.closed = True
            watch._failed(error)
            if error.code == "not_found":
                self._store.forget(job_id)
        for user_watch in self._user_watches:
            user_watch.streams.pop(job_id, None)

    async def _subscribe(
        self, session: Session, job_id: str, slots: asyncio.Semaphore | None = None
    ) -> None:
        watches = self._watches.get(job_id)
        if not watches:
            return
        payload = watches[0].stream.subscribe_payload()
        try:
            async with slots or contextlib.nullcontext():
                ack = await session.call_patiently("job:subscribe", payload)
        except JobspineError as exc:
            if exc.code == "unavailable":
                raise
            self._apply_slot(job_id, {"error": {"code": exc.code, "message": exc.message}})
            return
        for watch in watches[1:]:
            if watch.stream.job is None:
                watch.stream.job = watches[0].stream.job
        self._apply_slot(job_id, ack)

    async def _on_event(self, session: Session, event: Mapping[str, Any]) -> None:
        job_id = event.get("job_id")
        if not isinstance(job_id, str):
            return
        resync = False
        for watch in list(self._watches.get(job_id, [])):
            verdict = watch.stream.on_event(event)
            if verdict is Verdict.APPLIED:
                watch._applied(event)
                self._store.save(watch.stream.job)
            resync = resync or verdict is Verdict.RESYNC
        if resync:
            await self._subscribe(session, job_id)
        for user_watch in self._user_watches:
            await self._user_event(session, user_watch, job_id, event)

    async def _user_event(
        self, session: Session, user_watch: UserWatch, job_id: str, event: Mapping[str, Any]
    ) -> None:
        stream = user_watch.streams.get(job_id)
        if stream is None:
            data = event.get("data")
            if event.get("type") != EventType.CREATED or not isinstance(data, Mapping):
                stream = user_watch.stream(job_id)  # not listed: ask for its snapshot below
            else:
                stream = user_watch.stream(job_id)
                stream.job = job_from_wire(data["job"])
                user_watch._changed(stream.job)
                return
        verdict = stream.on_event(event)
        if verdict is Verdict.APPLIED:
            user_watch._changed(stream.job)
        elif verdict in (Verdict.RESYNC, Verdict.EARLY):
            cursor = {job_id: stream.last_seq} if stream.last_seq is not None else {job_id: 0}
            ack = await session.call_patiently("job:sync", {"cursors": cursor})
            slot = ack.get("results", {}).get(job_id)
            if isinstance(slot, Mapping) and "job" in slot:
                replayed = stream.on_replay(slot)
                if replayed.changed or replayed.first:
                    user_watch._changed(stream.job)

    async def _list_user(self, user_watch: UserWatch) -> None:
        cursor: str | None = None
        listed = 0
        while listed < USER_LIST_LIMIT:
            page = await self.list(limit=200, cursor=cursor)
            for job in page.items:
                stream = user_watch.stream(job.id)
                if stream.job is None or stream.job.epoch != job.epoch or stream.job.seq < job.seq:
                    stream.job = job
                    user_watch._changed(job)
            listed += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        if not user_watch.ready.done():
            user_watch.ready.set_result(None)

    # -- calls (REST) -------------------------------------------------------------------------

    async def create(
        self, type: str, input: Mapping[str, Any] | None = None, **fields: Any
    ) -> JobRecord:
        """A new job (``fields``: the contract's v2 create fields: priority, run_at, tags,
        parent_id, timeout_s, retry, idempotency_key, correlation_id)."""
        body = {"type": type, "input": dict(input or {}), **fields}
        return await self._rest.job("POST", "/api/jobs", body)

    async def pause(self, job_id: str) -> JobRecord:
        return await self._rest.job("POST", f"/api/jobs/{job_id}/pause")

    async def resume(self, job_id: str) -> JobRecord:
        return await self._rest.job("POST", f"/api/jobs/{job_id}/resume")

    async def cancel(self, job_id: str) -> JobRecord:
        return await self._rest.job("POST", f"/api/jobs/{job_id}/cancel")

    async def restart(self, job_id: str, input: Mapping[str, Any] | None = None) -> JobRecord:
        """Restart a failed or cancelled job, with a new input when given."""
        body = {} if input is None else {"input": dict(input)}
        return await self._rest.job("POST", f"/api/jobs/{job_id}/restart", body)

    async def get(self, job_id: str) -> JobRecord:
        return await self._rest.job("GET", f"/api/jobs/{job_id}")

    async def list(self, **query: str | int | None) -> JobPage:
        """A page of the user's jobs, newest first (``GET /api/jobs``: state, type, tag,
        parent_id, priority, limit, cursor, user_id)."""
        return await self._rest.page(query)


__all__ = ["JobPage", "JobspineClient"]
