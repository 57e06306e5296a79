"""The CLI's commands other than the daemon and the knowledge base: publishing a trade, schemas,
backtest reports, migrations. Each takes what it needs; main.py opens it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.publish import HubPublisher
from core.errors import HubError
from core.events import TRADE_FIELDS, TradeExecuted, event_schemas
from handlers.cli.options import validated
from handlers.cli.report_table import render_trade_log
from handlers.events.backtest_completed import import_report
from storage.reports import read_report, report_ids, report_path
from storage.sql import migrate
from storage.sql.engine import async_sessions


def trade_from_options(options: dict[str, Any]) -> TradeExecuted:
    """The trade the publish-trade options describe (UsageError naming the option if not one)."""
    given = {k: v for k, v in options.items() if v is not None and k in TRADE_FIELDS}
    return validated(TradeExecuted, {"event_id": str(uuid.uuid4()), **given})


async def publish_trade(publisher: HubPublisher, trade: TradeExecuted) -> None:
    """Publish one trade and say what the stream stored."""
    await publisher.publish(trade)
    print(f"published {trade.event_id}: {trade.action} {trade.quantity} {trade.asset} @ {trade.price}")


def write_schemas(out: Path) -> None:
    """Write each event's JSON Schema to OUT/<Name>.schema.json."""
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in event_schemas().items():
        (out / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2))
        print(out / f"{name}.schema.json")


def view_trades(logs_dir: Path, backtest_id: int | None) -> None:
    """Print a backtest's trade log and P/L from its report in logs/."""
    ids = report_ids(logs_dir)
    if not ids:
        print(f"No backtest report in {logs_dir} yet: the hub writes one when a "
              "BacktestCompleted event arrives on backtests.completed.")
        return
    path = report_path(logs_dir, backtest_id if backtest_id is not None else ids[-1])
    if not path.is_file():
        raise HubError(f"no report {path.name} in {logs_dir}; reports there: "
                       f"{', '.join(map(str, ids[-10:]))}")
    print(render_trade_log(read_report(path)))


async def import_report_file(engine: AsyncEngine, logs_dir: Path, path: Path) -> None:
    """Store the backtest a report describes (the report is also kept in logs/)."""
    stored = await import_report(async_sessions(engine), logs_dir, path)
    print(f"imported backtest {stored.id} ({stored.strategy})" if stored else
          "already stored: nothing to import")


async def db_command(engine: AsyncEngine, action: str, revision: str | None) -> None:
    """`db upgrade [REV]`, `db downgrade REV`, `db current`, `db revision MESSAGE`."""
    if action == "revision":
        if not revision:
            raise HubError('db revision needs a message, e.g. db revision "add trades.venue"')
        path = await migrate.new_revision(engine, revision)
        print(f"wrote {path}: read it, then run `python main.py db upgrade`")
        return
    if action == "upgrade":
        await migrate.upgrade(engine, revision or "head")
    elif action == "downgrade":
        if not revision:
            raise HubError("db downgrade needs the revision to go back to (or base)")
        await migrate.downgrade(engine, revision)
    current = await migrate.current(engine)
    newest = " (the newest)" if current == migrate.head() else f" (the newest is {migrate.head()})"
    print(f"database {engine.url.render_as_string(hide_password=True)}: "
          f"schema revision {current or 'none'}{newest}")
