"""Trade Hub: the composition root and the command line.

    python main.py                  run the hub (embedded NATS, SQLite, HTTP on 127.0.0.1:8080)
    python main.py publish-trade …  publish a trade to the running hub
    python main.py schemas --out D  write the events' JSON Schemas to D
    python main.py view-trades [ID] the latest (or given) backtest's trade log, from its report
    python main.py import-report F  store the backtest a report file describes
    python main.py index [--domain D]   index the knowledge base (through the hub if it runs)
    python main.py search "…" [--domain D]  search it
    python main.py db upgrade       migrate the database schema (done at start-up by default)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from pythonjsonlogger.json import JsonFormatter

from bus.connection import clear_state, connect_hub, write_state
from bus.consumer import BatchConsumer
from bus.embedded import EmbeddedNats
from bus.streams import ensure_consumer, ensure_hub_streams
from core.errors import HubError
from core.settings import Settings
from handlers.backtests import import_missing_reports
from handlers.commands import (
    db_command, import_report_file, publish_trade, view_trades, write_schemas,
)
from handlers.auth import require_token
from handlers.cors import enable_cors
from handlers.http import json_errors
from handlers.keys import (
    CONSUMERS, EMBEDDED_NATS, ENGINE, INDEXER, METRICS, NATS, NATS_URL, SESSIONS, SETTINGS, WS_HUB,
)
from handlers.metrics import HubMetrics
from handlers.knowledge import IndexFollower, SearchResponder
from handlers.knowledge_cli import index_command, search_command
from handlers.routes import add_routes
from handlers.routing import build_routes
from handlers.ws import WsHub
from storage.engine import async_sessions, create_hub_engine
from storage.migrate import prepare_schema
from storage.knowledge import KnowledgeIndexer

log = logging.getLogger("hub")


# --- the daemon's resources, started in this order and stopped in reverse -------------------

async def nats_server_ctx(app: web.Application) -> AsyncIterator[None]:
    """The embedded nats-server, unless HUB_NATS_URL points at an external one."""
    settings = app[SETTINGS]
    if settings.nats_url:
        app[NATS_URL] = settings.nats_url
        yield
        return
    token = settings.nats_token.get_secret_value() if settings.nats_token else None
    server = EmbeddedNats(settings.data_dir / "nats", settings.nats_port, settings.nats_max_payload,
                          token=token)
    app[NATS_URL] = await server.start()
    app[EMBEDDED_NATS] = server
    yield
    await server.stop()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database engine, with the schema migrated to the newest revision."""
    engine = create_hub_engine(app[SETTINGS].database_url)
    await prepare_schema(engine, app[SETTINGS].db_auto_upgrade)
    app[ENGINE] = engine
    app[SESSIONS] = async_sessions(engine)
    yield
    await engine.dispose()


async def nats_ctx(app: web.Application) -> AsyncIterator[None]:
    """The NATS connection, with the streams and durable consumers in place."""
    settings = app[SETTINGS]
    nc = await connect_hub(settings, app[NATS_URL], "trade-hub")
    js = nc.jetstream()
    await ensure_hub_streams(js, settings.stream_name, settings.stream_max_age_days,
                             settings.stream_replicas, settings.nats_max_payload)
    app[NATS] = nc
    yield
    await nc.drain()


async def ws_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fan-out of persisted events to this instance's WebSocket clients."""
    hub = WsHub(app[NATS], app[SETTINGS].ws_queue_size, app[SETTINGS].cors_origins)
    app[WS_HUB] = hub
    yield
    await hub.stop()


async def reports_ctx(app: web.Application) -> AsyncIterator[None]:
    """Import reports found in logs/ but not in the database, in the background."""

    async def run() -> None:
        imported = await import_missing_reports(app[SESSIONS], app[SETTINGS].logs_dir)
        if imported:
            log.info("imported %d backtest reports from %s", imported, app[SETTINGS].logs_dir)

    task = asyncio.create_task(run(), name="import-reports")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def knowledge_ctx(app: web.Application) -> AsyncIterator[None]:
    """The knowledge base: search over NATS, and incremental index passes in the background
    (at start, and whenever an instance announces a change)."""
    indexer = KnowledgeIndexer(app[SETTINGS])
    app[INDEXER] = indexer
    responder, follower = SearchResponder(app[NATS], indexer), IndexFollower(app[NATS], indexer)
    await responder.start()
    await follower.start()

    async def index_on_start() -> None:
        try:
            stats = await asyncio.to_thread(indexer.index_all)
        except HubError as error:  # e.g. no knowledge folder: search simply finds nothing
            log.warning("knowledge base not indexed: %s", error)
            return
        log.info("knowledge base indexed: %s", stats.as_dict())

    task = asyncio.create_task(index_on_start(), name="index-knowledge")
    yield
    await responder.stop()
    await follower.stop()
    await asyncio.gather(task, return_exceptions=True)  # a thread cannot be cancelled: let it end
    indexer.close()


async def consumers_ctx(app: web.Application) -> AsyncIterator[None]:
    """One batched consumer per route of the routing table."""
    settings, nc = app[SETTINGS], app[NATS]
    consumers = []
    for route in build_routes(settings, app[SESSIONS], app[INDEXER]):
        await ensure_consumer(nc.jetstream(), settings.stream_name, route.name,
                              route.filter_subject, settings.ack_wait_seconds)
        consumers.append(BatchConsumer(nc, nc.jetstream(), settings.stream_name, route))
    app[CONSUMERS] = consumers
    app[METRICS].watch(consumers, app[WS_HUB])
    tasks = [asyncio.create_task(c.run(), name=f"consume-{c.route.name}") for c in consumers]
    yield
    await stop_consumers(app)
    await asyncio.gather(*tasks, return_exceptions=True)


async def stop_consumers(app: web.Application) -> None:
    """Stop fetching; each consumer finishes, commits and acks the batch in hand."""
    for consumer in app[CONSUMERS]:
        consumer.stop()
    while any(c.stats.running for c in app[CONSUMERS]):
        await asyncio.sleep(0.01)


async def on_shutdown(app: web.Application) -> None:
    """Before the resources close: drain the consumers, then say goodbye to WebSocket clients."""
    await stop_consumers(app)
    await app[WS_HUB].close_all()


def build_app(settings: Settings) -> web.Application:
    """The hub as an aiohttp application; every resource is opened and closed here."""
    middlewares: list[Middleware] = [json_errors]
    if settings.api_token is not None:
        middlewares.append(require_token(settings.api_token.get_secret_value()))
    app = web.Application(middlewares=middlewares, client_max_size=16 * 1024 * 1024)
    app[SETTINGS] = settings
    app[METRICS] = HubMetrics()
    app.cleanup_ctx.extend(
        [nats_server_ctx, database_ctx, reports_ctx, nats_ctx, ws_hub_ctx, knowledge_ctx,
         consumers_ctx]
    )
    app.on_shutdown.append(on_shutdown)
    add_routes(app)
    if settings.cors_origins:
        enable_cors(app, settings.cors_origins)
    return app


async def serve(settings: Settings) -> None:
    """Run the daemon until SIGINT or SIGTERM, then stop everything in order."""
    app = build_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()
        await _start_http(runner, settings)
        # Ingest allocates many short-lived objects; the default gen-0 threshold (700) runs the
        # collector thousands of times a second. Start-up objects are frozen out of its scans.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        http_url = f"http://{settings.http_host}:{settings.http_port}"
        write_state(settings.state_file, nats_url=app[NATS_URL], http_url=http_url)
        print(f"Trade Hub ready\n  NATS      {app[NATS_URL]}"
              f"{' (embedded)' if not settings.nats_url else ''}\n"
              f"  HTTP      {http_url}  (WebSocket {http_url.replace('http', 'ws', 1)}/ws)\n"
              f"  database  {app[ENGINE].url.render_as_string(hide_password=True)}", flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        clear_state(settings.state_file)
        await runner.cleanup()


async def _start_http(runner: web.AppRunner, settings: Settings) -> None:
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    except OSError as error:
        raise HubError(
            f"cannot listen on {settings.http_host}:{settings.http_port} ({error.strerror}); "
            "set HUB_HTTP_PORT to a free port"
        ) from None


# --- the command line ----------------------------------------------------------------------

async def run_daemon(settings: Settings, args: argparse.Namespace) -> None:
    """The daemon."""
    await serve(settings)


def parser() -> argparse.ArgumentParser:
    """The CLI; no subcommand runs the daemon."""
    cli = argparse.ArgumentParser(prog="python main.py", description="Trade Hub: the event backbone for AI trading agents.")
    cli.set_defaults(command=run_daemon)
    sub = cli.add_subparsers(title="commands")
    sub.add_parser("run", help="run the hub (the default)").set_defaults(command=run_daemon)
    trade = sub.add_parser("publish-trade", help="publish a trade to the running hub")
    trade.set_defaults(command=publish_trade)
    trade.add_argument("--asset", required=True)
    trade.add_argument("--action", required=True, choices=["BUY", "SELL", "buy", "sell"])
    trade.add_argument("--price", required=True, type=float)
    trade.add_argument("--quantity", required=True, type=float)
    trade.add_argument("--confidence", required=True, type=float, help="0 to 100")
    trade.add_argument("--reasoning", default="")
    trade.add_argument("--source", default="cli")
    trade.add_argument("--strategy")
    trade.add_argument("--event-id", dest="event_id", help="default: a new UUID")
    schemas = sub.add_parser("schemas", help="write the events' JSON Schemas")
    schemas.set_defaults(command=write_schemas)
    schemas.add_argument("--out", default="schemas", help="folder (default: ./schemas)")
    view = sub.add_parser("view-trades", help="a backtest's trade log and P/L, from its report")
    view.set_defaults(command=view_trades)
    view.add_argument("id", nargs="?", type=int, help="backtest id (default: the latest)")
    index = sub.add_parser("index", help="index the knowledge base (incremental)")
    index.set_defaults(command=index_command)
    index.add_argument("--domain", action="append", help="only this domain (repeatable)")
    search = sub.add_parser("search", help="search the knowledge base")
    search.set_defaults(command=search_command)
    search.add_argument("query")
    search.add_argument("--domain")
    search.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    report = sub.add_parser("import-report", help="store the backtest a report file describes")
    report.set_defaults(command=import_report_file)
    report.add_argument("path")
    db = sub.add_parser("db", help="the database schema: upgrade, downgrade, current, revision")
    db.set_defaults(command=db_command)
    db.add_argument("action", choices=["upgrade", "downgrade", "current", "revision"])
    db.add_argument("revision", nargs="?", help="upgrade: default the newest; downgrade: required "
                    "(a revision, or base); revision: the new script's message")
    return cli


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # a faster event loop where it exists
        uvloop.run(main)
    except ImportError:
        asyncio.run(main)


def configure_logging(settings: Settings) -> None:
    """HUB_LOG_LEVEL, and HUB_LOG_FORMAT: text for people, json (one object a line) for machines."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                                           rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.WARNING)  # storage.migrate logs what changed


def cli(argv: list[str] | None = None) -> int:
    """Entry point: parse ARGV, run the command, turn the hub's errors into one clear line."""
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    command: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]] = args.command
    try:
        _run(command(settings, args))
    except (HubError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a validation error from the CLI's own input, mostly
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
