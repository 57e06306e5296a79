"""GET /api/trades?limit=100 against a database holding a million trades.

    python -m tests.bench.bench_rest [--trades 1000000] [--requests 1000]

The rows are written straight through storage (the read path is what is measured), then the
daemon (`python main.py`) serves them; a client sends the requests one after another and times
each from send to the last byte.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from core.events import TradeExecuted
from storage.sql.engine import create_hub_engine
from storage.sql.migrate import upgrade
from storage.sql.trade_rows import TradeWriter
from tests.bench.common import percentile, quiet_hub

ASSETS = ["BTC", "ETH", "SOL", "ADA", "XRP", "DOGE", "DOT", "AVAX", "LINK", "LTC"]


async def fill(db: Path, total: int) -> None:
    engine = create_hub_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    writer = TradeWriter(engine)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for first in range(0, total, 10_000):
        events = [TradeExecuted(event_id=f"r-{i}", timestamp=start + timedelta(seconds=i),
                                asset=ASSETS[i % len(ASSETS)], action="BUY" if i % 2 else "SELL",
                                price=100.0 + i % 977, quantity=1.5, confidence=i % 101,
                                reasoning="momentum and volume agree; risk budget allows a full unit",
                                source=f"bot-{i % 7}", strategy="bench")
                  for i in range(first, min(total, first + 10_000))]
        await writer.insert(events)
    await writer.close()
    await engine.dispose()


async def timed(http: aiohttp.ClientSession, url: str, requests: int) -> list[float]:
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        async with http.get(url) as response:
            body = await response.read()
            assert response.status == 200, body[:200]
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def bench(base: str, requests: int) -> None:
    async with aiohttp.ClientSession() as http:
        first = await (await http.get(f"{base}/api/trades?limit=100&asset=ETH")).json()
        cases = {
            "limit=100": "/api/trades?limit=100",
            "limit=100&asset=ETH": "/api/trades?limit=100&asset=ETH",
            "limit=100&asset=ETH&cursor=(page 2)": f"/api/trades?limit=100&asset=ETH&cursor={first['next_cursor']}",
            "limit=100&since=…&until=… (one day)": "/api/trades?limit=100&since=2024-01-05T00:00:00Z&until=2024-01-06T00:00:00Z",
        }
        for name, path in cases.items():
            await timed(http, base + path, 50)  # warm-up
            timings = await timed(http, base + path, requests)
            print(f"  {name:<40} p50 {percentile(timings, 50):6.2f} ms  p99 {percentile(timings, 99):6.2f} ms"
                  f"  max {max(timings):6.2f} ms")


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--trades", type=int, default=1_000_000)
    cli.add_argument("--requests", type=int, default=1000)
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        asyncio.run(fill(Path(scratch) / "data" / "hub.db", args.trades))  # where the hub keeps it
        print(f"{args.trades} trades written in {time.perf_counter() - started:.1f} s; "
              f"{args.requests} sequential requests each:")
        hub = quiet_hub(Path(scratch))
        try:
            asyncio.run(bench(hub.http_url, args.requests))
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
