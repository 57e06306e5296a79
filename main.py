"""Trade Hub: the composition root. It builds every resource for the daemon and for each
subcommand, starts and stops them in order, and runs the command line (handlers/cli/parser.py).

    python main.py                  run the hub (embedded NATS, SQLite, HTTP on 127.0.0.1:8080)
    python main.py --help           every subcommand
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

if __name__ == "__main__" and sys.argv[1:] == ["mcp"]:
    # MCP hosts start this once per conversation: spare it the daemon's imports (scipy alone
    # takes about a second), so that it answers initialize in well under two.
    from handlers.cli.mcp_stdio import main as mcp_main
    sys.exit(mcp_main())

# Before numpy loads. The daemon forks (its embedded nats-server, again after a crash), and
# OpenBLAS's fork handler joins its worker threads: one of them busy for a numpy call that is
# waiting for the interpreter lock, which the forking thread holds, never ends, and the hub hangs
# (seen: a NATS restart during the int8 encoder's calibration). One BLAS thread leaves no pool
# to join; the hub's numpy work is small (metrics, calibration) and its embedder is onnxruntime.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from aiohttp import web
from aiohttp.typedefs import Middleware
from nats.aio.client import Client as Nats
from pydantic import BaseModel, ValidationError
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.connection import connect_hub, find_hub, resolve_nats_url
from bus.consumer import BatchConsumer
from bus.embedded import EmbeddedNats
from bus.publish import HubPublisher
from bus.replies import serve as serve_responder
from bus.streams import ensure_consumer, ensure_hub_streams
from core.daemon_state import clear_state, write_state
from core.errors import HubError, UsageError
from core.decisions import RecallRequest
from core.knowledge import SearchRequest
from core.performance import CalibrationQuery, PerformanceQuery
from core.settings import Settings
from handlers.cli import commands
from handlers.cli.decision_commands import recall_command
from handlers.cli.knowledge_commands import index_command, search_command
from handlers.cli.options import describe_options, validated
from handlers.cli.outcome_commands import calibration_command, performance_command
from handlers.cli.parser import build_parser
from handlers.events.backtest_completed import import_missing_reports
from handlers.events.decision_questions import DecisionMemory
from handlers.events.index_requested import IndexFollower
from handlers.events.outcome_worker import OutcomeWorker
from handlers.events.reasoning_worker import ReasoningWorker
from handlers.events.subscriptions import Subscriptions, build_subscriptions
from handlers.http.auth import require_token
from handlers.http.cors import enable_cors
from handlers.http.keys import (
    CONSUMERS, EMBEDDED_NATS, ENGINE, INDEXER, MEMORY, METRICS, NATS, NATS_URL, OUTCOMES,
    SESSIONS, SETTINGS, TRADE_WRITER, WS_HUB,
)
from handlers.http.mcp_http import add_mcp
from handlers.http.prometheus import HubMetrics
from handlers.http.responses import json_errors
from handlers.http.routes import add_routes
from handlers.http.websocket import WsHub
from storage.rag.indexer import KnowledgeIndexer
from storage.rag.reasoning_index import ReasoningIndex
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import prepare_schema
from storage.sql.trade_rows import TradeWriter

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


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The database engine, with the schema migrated (or checked) as the settings say."""
    engine = create_hub_engine(settings.database_url)
    try:
        await prepare_schema(engine, settings.db_auto_upgrade)
        yield engine
    finally:
        await engine.dispose()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database engine, the session factory every handler and view uses, and what the
    trades consumer stores through."""
    async with open_database(app[SETTINGS]) as engine:
        app[ENGINE] = engine
        app[SESSIONS] = async_sessions(engine)
        app[TRADE_WRITER] = TradeWriter(engine)
        try:
            yield
        finally:
            await app[TRADE_WRITER].close()


async def nats_ctx(app: web.Application) -> AsyncIterator[None]:
    """The NATS connection, with the streams in place."""
    settings = app[SETTINGS]
    nc = await connect_hub(settings, app[NATS_URL], "trade-hub")
    await ensure_hub_streams(nc.jetstream(), settings.stream_name, settings.stream_max_age_days,
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
    """The knowledge base, indexed incrementally and its model loaded in the background at
    start: readiness does not wait for either, and /api/health says when search is warm."""
    indexer = KnowledgeIndexer(app[SETTINGS])
    app[INDEXER] = indexer

    async def index_on_start() -> None:
        try:
            stats = await asyncio.to_thread(indexer.index_all)
        except HubError as error:  # e.g. no knowledge folder: search simply finds nothing
            log.warning("knowledge base not indexed: %s", error)
            return
        log.info("knowledge base indexed: %s", stats.as_dict())

    async def warm_up() -> None:
        try:
            await asyncio.to_thread(indexer.warm_up)
        except Exception as error:  # e.g. a Chroma server that is down: search will say so
            log.warning("knowledge search not warmed up: %s", error)

    tasks = [asyncio.create_task(index_on_start(), name="index-knowledge"),
             asyncio.create_task(warm_up(), name="warm-up-embedder")]
    yield
    await asyncio.gather(*tasks, return_exceptions=True)  # a thread cannot be cancelled: let it end
    indexer.close()


async def outcomes_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outcome worker, pairing stored trades in the background (one instance at a time)."""
    worker = OutcomeWorker(app[SESSIONS], app[NATS].publish)
    app[OUTCOMES] = worker
    task = asyncio.create_task(worker.run(), name="outcomes")
    yield
    worker.stop()
    await task


async def memory_ctx(app: web.Application) -> AsyncIterator[None]:
    """Decision memory: the reasoning worker in the background (embedding: one instance at a
    time) and the searches over what it indexed."""
    index = ReasoningIndex(app[SETTINGS])
    worker = ReasoningWorker(app[SESSIONS], index)
    app[MEMORY] = DecisionMemory(app[SESSIONS], worker)
    task = asyncio.create_task(worker.run(), name="reasoning")
    yield
    worker.stop()
    await task
    await asyncio.to_thread(index.close)


async def subscriptions_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every row of the routing table: consumers, responders and listeners."""
    settings, nc = app[SETTINGS], app[NATS]
    follower = IndexFollower(app[INDEXER])
    workers = (app[OUTCOMES], app[MEMORY].worker)

    def trades_stored() -> None:  # both background workers follow the trades table
        behind = any(consumer.behind() for consumer in app[CONSUMERS])
        for worker in workers:
            worker.wake(behind)

    table = build_subscriptions(settings, app[SESSIONS], app[INDEXER], follower, app[MEMORY],
                                app[WS_HUB].fan_out, nc.publish, trades_stored, app[TRADE_WRITER])
    subscriptions = [await serve_responder(nc, responder) for responder in table.responders]
    for listener in table.listeners:
        if listener.on_demand:
            app[WS_HUB].attach(listener)
        else:
            subscriptions.append(await nc.subscribe(listener.subject, cb=listener.callback))
    tasks = await _start_consumers(app, table)
    yield
    await stop_consumers(app)
    await asyncio.gather(*tasks, return_exceptions=True)
    for subscription in subscriptions:
        await subscription.unsubscribe()
    await follower.stop()


async def _start_consumers(app: web.Application, table: Subscriptions) -> list[asyncio.Task[None]]:
    settings, nc = app[SETTINGS], app[NATS]
    consumers = []
    for route in table.consumers:
        await ensure_consumer(nc.jetstream(), settings.stream_name, route.name,
                              route.filter_subject, settings.ack_wait_seconds)
        consumers.append(BatchConsumer(nc, nc.jetstream(), settings.stream_name, route))
    app[CONSUMERS] = consumers
    app[METRICS].watch(consumers, app[WS_HUB])
    return [asyncio.create_task(c.run(), name=f"consume-{c.route.name}") for c in consumers]


async def stop_consumers(app: web.Application) -> None:
    """Stop fetching; each consumer finishes, commits and acks the batches in hand."""
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
    app.cleanup_ctx.extend([nats_server_ctx, database_ctx, reports_ctx, nats_ctx, ws_hub_ctx,
                            knowledge_ctx, outcomes_ctx, memory_ctx, subscriptions_ctx])
    app.on_shutdown.append(on_shutdown)
    add_routes(app)
    add_mcp(app)  # /mcp, after NATS among the resources: record_trade publishes
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
        print(f"Trade Hub ready\n  NATS      {app[NATS_URL]}{_nats_note(app)}\n"
              f"  HTTP      {http_url}  (WebSocket {http_url.replace('http', 'ws', 1)}/ws)\n"
              f"  database  {app[ENGINE].url.render_as_string(hide_password=True)}", flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        clear_state(settings.state_file)
        await runner.cleanup()


def _nats_note(app: web.Application) -> str:
    server = app.get(EMBEDDED_NATS)
    if server is None:
        return ""
    if server.port == server.preferred_port:
        return " (embedded)"
    return (f" (embedded; {server.preferred_port} is taken, so this data folder keeps port "
            f"{server.port}: pin one with HUB_NATS_PORT; scripts: `python main.py nats-url`)")


async def _start_http(runner: web.AppRunner, settings: Settings) -> None:
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    except OSError as error:
        raise HubError(
            f"cannot listen on {settings.http_host}:{settings.http_port} ({error.strerror}); "
            "set HUB_HTTP_PORT to a free port"
        ) from None


# --- the subcommands: each opens what it needs and hands it over -----------------------------

@asynccontextmanager
async def hub_or_local(settings: Settings) -> AsyncIterator[Nats | None]:
    """A connection to the running hub, or None when no hub runs and the store is free."""
    nc = await find_hub(settings, "hub-cli")
    try:
        yield nc
    finally:
        if nc is not None:
            await nc.drain()


def local_indexer(settings: Settings) -> Callable[[], KnowledgeIndexer]:
    """Opens the store in this process: only when no hub holds it."""
    return lambda: KnowledgeIndexer(settings)


async def run_index(settings: Settings, args: argparse.Namespace) -> None:
    async with hub_or_local(settings) as hub:
        await index_command(hub, local_indexer(settings), args.domain)


async def run_search(settings: Settings, args: argparse.Namespace) -> None:
    search = validated(SearchRequest, {"query": args.query, "domain": args.domain, "k": args.k},
                       flags={"query": "the query", "k": "-k"})
    async with hub_or_local(settings) as hub:
        await search_command(hub, local_indexer(settings), search)


@asynccontextmanager
async def local_memory(settings: Settings) -> AsyncIterator[DecisionMemory]:
    """Decision memory over a stopped hub's store, as far as it was indexed (no worker runs)."""
    async with open_database(settings) as engine:
        index = ReasoningIndex(settings)
        try:
            yield DecisionMemory(async_sessions(engine), ReasoningWorker(async_sessions(engine), index))
        finally:
            await asyncio.to_thread(index.close)


async def run_recall(settings: Settings, args: argparse.Namespace) -> None:
    draft = validated(RecallRequest, _given(args, RecallRequest), flags={"reasoning": "the reasoning", "k": "-k"})
    async with hub_or_local(settings) as hub:
        await recall_command(hub, lambda: local_memory(settings), draft)


async def run_publish_trade(settings: Settings, args: argparse.Namespace) -> None:
    trade = commands.trade_from_options(vars(args))
    async with await HubPublisher.connect(settings, "hub-cli") as publisher:
        await commands.publish_trade(publisher, trade)


async def run_nats_url(settings: Settings, args: argparse.Namespace) -> None:
    print(resolve_nats_url(settings))


async def run_import_report(settings: Settings, args: argparse.Namespace) -> None:
    async with open_database(settings) as engine:
        await commands.import_report_file(engine, settings.logs_dir, Path(args.path))


async def run_db(settings: Settings, args: argparse.Namespace) -> None:
    engine = create_hub_engine(settings.database_url)  # not migrated: that is this command's job
    try:
        await commands.db_command(engine, args.action, args.revision)
    finally:
        await engine.dispose()


async def run_performance(settings: Settings, args: argparse.Namespace) -> None:
    query = validated(PerformanceQuery, _given(args, PerformanceQuery))
    async with open_database(settings) as engine:
        await performance_command(async_sessions(engine), query)


async def run_calibration(settings: Settings, args: argparse.Namespace) -> None:
    query = validated(CalibrationQuery, _given(args, CalibrationQuery))
    async with open_database(settings) as engine:
        await calibration_command(async_sessions(engine), query)


def _given(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k in model.model_fields and v is not None}


async def run_schemas(settings: Settings, args: argparse.Namespace) -> None:
    commands.write_schemas(Path(args.out))


async def run_view_trades(settings: Settings, args: argparse.Namespace) -> None:
    commands.view_trades(settings.logs_dir, args.id)


async def run_mcp(settings: Settings, args: argparse.Namespace) -> None:
    from handlers.cli.mcp_stdio import serve_stdio  # the SDK's imports, for this command only

    await serve_stdio(settings)


async def run_daemon(settings: Settings, args: argparse.Namespace) -> None:
    await serve(settings)


ENVIRONMENT = {name: f"HUB_{name.upper()}" for name in Settings.model_fields}
Runner = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]
COMMANDS: dict[str, Runner] = {
    "run": run_daemon, "nats-url": run_nats_url, "publish-trade": run_publish_trade,
    "schemas": run_schemas, "view-trades": run_view_trades, "index": run_index,
    "search": run_search, "import-report": run_import_report, "db": run_db,
    "performance": run_performance, "calibration": run_calibration, "recall": run_recall,
    "mcp": run_mcp,
}


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
    logging.getLogger("alembic").setLevel(logging.WARNING)  # storage.sql.migrate logs what changed


def cli(argv: list[str] | None = None) -> int:
    """Entry point: parse ARGV, run the command, turn the hub's errors into one clear line."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"error: {describe_options(error, flags=ENVIRONMENT)}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        _run(COMMANDS[args.command](settings, args))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (HubError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: one line here, the traceback in the log at DEBUG
        log.debug("command failed", exc_info=True)
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
