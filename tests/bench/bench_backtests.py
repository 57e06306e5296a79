"""Backtests: a large one end to end, its detail over HTTP, and listing 10,000 of them.

    python tests/bench/bench_backtests.py [--points 100000] [--trades 10000] [--stored 10000]

1. A BacktestCompleted with POINTS curve points and TRADES fills is published to the daemon
   (`python main.py`, embedded nats-server); timed from the publish call until its report is
   in logs/ and its row is committed (polled every 5 ms). Three runs.
2. GET /api/backtests/{id} for that backtest, in full and with points=1000.
3. STORED small backtests are written through storage; then GET /api/backtests?sort=sharpe&limit=50.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from bus.connection import connect
from bus.publish import HubPublisher
from core.backtest_report import analyse
from core.events import BacktestCompleted
from storage.sql.backtest_rows import insert_backtest
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import upgrade
from tests.bench.common import percentile, quiet_hub
from tests.support.hub_process import HubProcess

START = 1_704_067_200


def large_event(event_id: str, points: int, trades: int) -> BacktestCompleted:
    rng = np.random.default_rng(11)
    values = 10_000 * np.exp(np.cumsum(rng.normal(0.00001, 0.001, points)))
    bench = 42_000 * np.exp(np.cumsum(rng.normal(0.00001, 0.0012, points)))
    return BacktestCompleted.model_validate({
        "event_id": event_id, "strategy": "bench_large", "parameters": {"window": 20},
        "start": START, "end": START + 60 * (points - 1), "initial_capital": 10_000.0,
        "equity_curve": [{"timestamp": START + 60 * i, "value": float(v), "benchmark": float(b)}
                         for i, (v, b) in enumerate(zip(values, bench))],
        "trades": [{"timestamp": START + 60 * (i * (points // trades)), "asset": "BTC",
                    "action": "BUY" if i % 2 == 0 else "SELL", "price": float(bench[i * (points // trades)]),
                    "quantity": 0.1, "fee": 0.4, "reasoning": "z-score of the spread crossed 2.0",
                    "confidence": 50 + i % 50} for i in range(trades)],
    })


def committed(db: Path, event_id: str) -> int | None:
    with sqlite3.connect(db, timeout=30) as connection:
        row = connection.execute("SELECT id FROM backtests WHERE event_id = ?", (event_id,)).fetchone()
    return None if row is None else int(row[0])


async def end_to_end(hub: HubProcess, points: int, trades: int) -> int:
    nc = await connect(hub.nats_url, "bench")
    publisher = HubPublisher(nc)
    backtest_id = 0
    for run in range(3):
        event = large_event(f"bt-large-{run}", points, trades)
        started = time.perf_counter()
        await publisher.publish(event)
        while (backtest_id := committed(hub.data_dir / "hub.db", event.event_id) or 0) == 0 or not (
                hub.logs_dir / f"backtest_{backtest_id}.json").exists():
            await asyncio.sleep(0.005)
        print(f"  run {run + 1}: publish -> report written and rows committed in "
              f"{time.perf_counter() - started:.2f} s")
    await nc.close()
    return backtest_id


async def timed(http: aiohttp.ClientSession, url: str, requests: int) -> list[float]:
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
            assert response.status == 200
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def report(name: str, timings: list[float]) -> None:
    print(f"  {name:<46} p50 {percentile(timings, 50):7.2f} ms  p99 {percentile(timings, 99):7.2f} ms")


async def fill_many(db: Path, count: int) -> None:
    engine = create_hub_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    sessions = async_sessions(engine)
    rng = np.random.default_rng(5)
    for first in range(0, count, 500):
        async with sessions() as session, session.begin():
            for i in range(first, min(count, first + 500)):
                steps = np.cumsum(rng.normal(0.0005, 0.01, 30))
                event = BacktestCompleted.model_validate({
                    "event_id": f"bt-many-{i}", "strategy": f"strategy_{i % 20}", "parameters": {"i": i},
                    "start": START, "end": START + 29 * 86_400, "initial_capital": 1000.0,
                    "equity_curve": [{"timestamp": START + 86_400 * k, "value": float(1000 * np.exp(s))}
                                     for k, s in enumerate(steps)],
                    "trades": [{"timestamp": START, "asset": "BTC", "action": "BUY", "price": 100.0, "quantity": 1.0},
                               {"timestamp": START + 86_400, "asset": "BTC", "action": "SELL",
                                "price": float(100 * np.exp(steps[1])), "quantity": 1.0}]})
                from datetime import datetime, timezone
                await insert_backtest(session, event, analyse(event), datetime.now(timezone.utc))
    await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        await fill_many(Path(scratch) / "data" / "hub.db", args.stored)  # where the hub keeps it
        hub = quiet_hub(Path(scratch))
        try:
            print(f"A backtest of {args.points:,} curve points and {args.trades:,} fills:")
            backtest_id = await end_to_end(hub, args.points, args.trades)
            async with aiohttp.ClientSession() as http:
                base = f"{hub.http_url}/api/backtests"
                await timed(http, f"{base}/{backtest_id}", 3)
                report(f"GET /api/backtests/{{id}} (full, ~{args.points // 1000}k points)",
                       await timed(http, f"{base}/{backtest_id}", 30))
                await timed(http, f"{base}/{backtest_id}?points=1000", 10)
                report("GET /api/backtests/{id}?points=1000", await timed(http, f"{base}/{backtest_id}?points=1000", 200))
                print(f"Listing with {args.stored:,} backtests stored ({args.requests} requests each):")
                for name, query in [("sort=sharpe&limit=50", "?sort=sharpe&limit=50"),
                                    ("sort=sharpe&limit=50&offset=5000", "?sort=sharpe&limit=50&offset=5000"),
                                    ("strategy=strategy_7&sort=total_return", "?strategy=strategy_7&sort=total_return&limit=50")]:
                    await timed(http, base + query, 20)
                    report(name, await timed(http, base + query, args.requests))
        finally:
            hub.stop()


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--points", type=int, default=100_000)
    cli.add_argument("--trades", type=int, default=10_000)
    cli.add_argument("--stored", type=int, default=10_000)
    cli.add_argument("--requests", type=int, default=1000)
    asyncio.run(main(cli.parse_args()))
