"""``python -m server [--dev] [--host H] [--port P]``: run the web process.

A bad configuration stops it with one line on stderr (``jobspine: <message>``) and exit
status 2. SIGINT and SIGTERM shut it down cleanly: Socket.IO clients are disconnected while
the server still hears their replies, then aiohttp stops (open requests get
``SHUTDOWN_TIMEOUT_S``) and the application's cleanup closes everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from jobspine_shared.event_loop import event_loop_factory
from server.app import close_client_connections, create_app
from server.config import Settings, load_settings
from server.devmode import banner
from server.errors import ConfigError
from server.logs import configure_logging
from server.rest.ops import MetricsSiteError

log = logging.getLogger("server")

#: How long shutdown waits for Socket.IO clients to go once told to.
DISCONNECT_TIMEOUT_S = 3.0
#: How long shutdown then waits for open requests before cancelling them.
SHUTDOWN_TIMEOUT_S = 10.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument(
        "--dev",
        action="store_true",
        help="development mode: a random JWT secret unless JWT_SECRET is set, and "
        "ready-made user, admin and worker tokens printed at start",
    )
    parser.add_argument("--host", help="listen address (overrides HOST)")
    parser.add_argument("--port", help="listen port (overrides PORT)")
    return parser


def settings_from(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    env = dict(environ)
    if args.host is not None:
        env["HOST"] = args.host
    if args.port is not None:
        env["PORT"] = args.port
    return load_settings(env, dev=args.dev)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from(args, dict(os.environ))
    except ConfigError as exc:
        print(f"jobspine: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, logging.getLevelName(settings.log_level))
    if settings.dev:
        print(banner(settings), flush=True)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
    except CannotListen as exc:
        log.error("%s", exc)
        return 1
    return 0


def freeze_startup_objects() -> None:
    """Exempt what exists once the app is built (modules, classes, the app) from garbage
    collection: they live as long as the process, and a full collection would otherwise
    traverse all of them every time, a pause of 10 to 30 ms in the middle of live traffic
    (docs/performance.md). Garbage made during startup is collected first."""
    gc.collect()
    gc.freeze()


class CannotListen(Exception):
    """The address is taken, or the host is not one of this machine's."""


async def serve(settings: Settings) -> None:
    """Run the app until SIGINT or SIGTERM, then shut it down."""
    app = create_app(settings)
    # access_log=None: tracking_middleware writes the access line (ACCESS_LOG), without the
    # query string aiohttp's own line would show.
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None
    )
    try:
        await runner.setup()
    except MetricsSiteError as exc:
        await runner.cleanup()
        raise CannotListen(str(exc)) from exc
    freeze_startup_objects()
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            raise CannotListen(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        loop = asyncio.get_running_loop()
        log.info(
            "jobspine web listening on http://%s:%d (store: %s, redis: %s, loop: %s)",
            settings.host,
            settings.port,
            "postgres" if settings.database_url else "memory",
            "on" if settings.redis_url else "off",
            "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
        )
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
        if not await close_client_connections(app, DISCONNECT_TIMEOUT_S):
            log.warning("some clients did not disconnect within %.0f s", DISCONNECT_TIMEOUT_S)
    finally:
        await runner.cleanup()
    log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
