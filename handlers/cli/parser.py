"""The command line's grammar: every subcommand and its options (main.py runs them)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from core.events import TradeExecuted
from core.knowledge import DOMAINS
from core.performance import CalibrationQuery, PerformanceQuery
from handlers.cli.options import add_model_options


class HubArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The CLI; no subcommand runs the daemon. Each command's name is args.command."""
    cli = HubArgumentParser(prog="python main.py",
                            description="Trade Hub: the event backbone for AI trading agents.")
    cli.set_defaults(command="run")
    sub = cli.add_subparsers(title="commands")
    sub.add_parser("run", help="run the hub (the default)").set_defaults(command="run")
    sub.add_parser("nats-url", help="print the running hub's NATS URL (for bots in any language)"
                   ).set_defaults(command="nats-url")
    trade = sub.add_parser("publish-trade", help="publish a trade to the running hub")
    trade.set_defaults(command="publish-trade")
    add_model_options(trade, TradeExecuted, skip={"schema_version", "timestamp"}, source="cli",
                      event_id=None)  # None: a new UUID
    schemas = sub.add_parser("schemas", help="write the events' JSON Schemas")
    schemas.set_defaults(command="schemas")
    schemas.add_argument("--out", default="schemas", help="folder (default: ./schemas)")
    view = sub.add_parser("view-trades", help="a backtest's trade log and P/L, from its report")
    view.set_defaults(command="view-trades")
    view.add_argument("id", nargs="?", type=int, help="backtest id (default: the latest)")
    index = sub.add_parser("index", help="index the knowledge base (incremental)")
    index.set_defaults(command="index")
    index.add_argument("--domain", action="append", choices=DOMAINS, help="only this domain (repeatable)")
    search = sub.add_parser("search", help="search the knowledge base")
    search.set_defaults(command="search")
    search.add_argument("query")
    search.add_argument("--domain", choices=DOMAINS)
    search.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    recall = sub.add_parser("recall", help="what happened the last times a trade was reasoned like this")
    recall.set_defaults(command="recall")
    recall.add_argument("reasoning", help="the draft reasoning, in your own words")
    for name in ("asset", "source", "strategy"):
        recall.add_argument(f"--{name}", help=f"only past decisions of this {name}")
    recall.add_argument("-k", type=int, default=10, help="how many past decisions (default 10)")
    performance = sub.add_parser("performance", help="live realized performance per agent")
    performance.set_defaults(command="performance")
    add_model_options(performance, PerformanceQuery)
    calibration = sub.add_parser("calibration", help="does an agent's confidence predict its wins?")
    calibration.set_defaults(command="calibration")
    add_model_options(calibration, CalibrationQuery)
    sub.add_parser("mcp", help="the MCP server over stdio, for Claude Desktop, Claude Code and "
                   "other MCP hosts").set_defaults(command="mcp")
    report = sub.add_parser("import-report", help="store the backtest a report file describes")
    report.set_defaults(command="import-report")
    report.add_argument("path")
    db = sub.add_parser("db", help="the database schema: upgrade, downgrade, current, revision")
    db.set_defaults(command="db")
    db.add_argument("action", choices=["upgrade", "downgrade", "current", "revision"])
    db.add_argument("revision", nargs="?", help="upgrade: default the newest; downgrade: required "
                    "(a revision, or base); revision: the new script's message")
    return cli
