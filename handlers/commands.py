"""The CLI's commands other than the daemon: publishing, schemas, backtest reports, migrations."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from bus.publish import HubPublisher
from core.errors import HubError
from core.events import event_schemas
from core.settings import Settings
from handlers.backtests import import_report
from handlers.report_table import render_trade_log
from storage import migrate
from storage.engine import async_sessions, create_hub_engine
from storage.reports import read_report, report_ids, report_path


async def publish_trade(settings: Settings, args: argparse.Namespace) -> None:
    """Publish one trade from the command line and print it as stored in the stream."""
    fields = {k: v for k, v in vars(args).items()
              if k in {"asset", "action", "price", "quantity", "reasoning", "confidence",
                       "source", "strategy", "event_id"} and v is not None}
    async with await HubPublisher.connect(settings, "hub-cli") as publisher:
        trade = await publisher.publish_trade(**fields)
    print(f"published {trade.event_id}: {trade.action} {trade.quantity} {trade.asset} @ {trade.price}")


async def write_schemas(settings: Settings, args: argparse.Namespace) -> None:
    """Write each event's JSON Schema to OUT/<Name>.schema.json."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in event_schemas().items():
        (out / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2))
        print(out / f"{name}.schema.json")


async def view_trades(settings: Settings, args: argparse.Namespace) -> None:
    """Print a backtest's trade log and P/L from its report in logs/."""
    ids = report_ids(settings.logs_dir)
    if not ids:
        print(f"No backtest report in {settings.logs_dir} yet: the hub writes one when a "
              "BacktestCompleted event arrives on backtests.completed.")
        return
    path = report_path(settings.logs_dir, args.id if args.id is not None else ids[-1])
    if not path.is_file():
        raise HubError(f"no report {path.name} in {settings.logs_dir}; reports there: "
                       f"{', '.join(map(str, ids[-10:]))}")
    print(render_trade_log(read_report(path)))


async def import_report_file(settings: Settings, args: argparse.Namespace) -> None:
    """Store the backtest a report describes (the report is also kept in logs/)."""
    engine = create_hub_engine(settings.database_url)
    try:
        await migrate.prepare_schema(engine, settings.db_auto_upgrade)
        stored = await import_report(async_sessions(engine), settings.logs_dir, Path(args.path))
    finally:
        await engine.dispose()
    print(f"imported backtest {stored.id} ({stored.strategy})" if stored else
          "already stored: nothing to import")


async def db_command(settings: Settings, args: argparse.Namespace) -> None:
    """`db upgrade [REV]`, `db downgrade REV`, `db current`, `db revision MESSAGE`."""
    engine = create_hub_engine(settings.database_url)
    try:
        if args.action == "revision":
            if not args.revision:
                raise HubError('db revision needs a message, e.g. db revision "add trades.venue"')
            path = await migrate.new_revision(engine, args.revision)
            print(f"wrote {path}: read it, then run `python main.py db upgrade`")
            return
        if args.action == "upgrade":
            await migrate.upgrade(engine, args.revision or "head")
        elif args.action == "downgrade":
            if not args.revision:
                raise HubError("db downgrade needs the revision to go back to (or base)")
            await migrate.downgrade(engine, args.revision)
        revision = await migrate.current(engine)
    finally:
        await engine.dispose()
    newest = " (the newest)" if revision == migrate.head() else f" (the newest is {migrate.head()})"
    print(f"database {engine.url.render_as_string(hide_password=True)}: "
          f"schema revision {revision or 'none'}{newest}")
