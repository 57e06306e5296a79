"""Sustained durable ingest: publish -> committed row, the real daemon against a naive pipeline.

    python tests/bench/bench_ingest.py [--trades 200000] [--naive-trades 10000]

The hub is `python main.py` with its embedded nats-server and SQLite; the publisher is another
process. Throughput = trades / (first publish -> last row committed), read from the database.
The naive pipeline (nats-py fetch, validate, add, commit and ack per message) runs in the same
run against its own nats-server and SQLite file, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.common import REPO, DaemonProcess

PUBLISHER = str(REPO / "tests" / "bench" / "publisher.py")


def rows(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as connection:
        return int(connection.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])


def measure(db: Path, nats_url: str, total: int) -> tuple[float, float]:
    """Seconds from the publisher's start to the last committed row, and the publisher's own time."""
    started = time.perf_counter()
    publisher = subprocess.Popen([sys.executable, PUBLISHER, nats_url, str(total)])
    published_at = None
    while (stored := rows(db)) < total:
        if published_at is None and publisher.poll() is not None:
            published_at = time.perf_counter() - started
            if publisher.returncode:
                raise RuntimeError("the publisher failed")
        if published_at is not None and time.perf_counter() - started > published_at + 120:
            raise RuntimeError(f"only {stored} of {total} rows arrived")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    publisher.wait()
    return elapsed, published_at or elapsed


def bench_hub(total: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        hub = DaemonProcess(Path(scratch))
        try:
            elapsed, publishing = measure(Path(scratch) / "hub.db", hub.nats_url, total)
        finally:
            hub.stop()
    rate = total / elapsed
    print(f"hub:   {total:>7} trades in {elapsed:6.2f} s = {rate:>8.0f} trades/s "
          f"(publisher alone took {publishing:.2f} s)")
    return rate


async def naive_consumer(url: str, db_url: str, total: int) -> float:
    """The pipeline everyone writes first: one message, one transaction. Returns its seconds."""
    from nats.errors import TimeoutError as FetchTimeout

    from bus.connection import connect
    from bus.streams import ensure_consumer, ensure_hub_streams
    from core.events import TradeExecuted
    from storage.engine import async_sessions, create_hub_engine
    from storage.migrate import upgrade
    from storage.models import Trade

    engine = create_hub_engine(db_url)
    await upgrade(engine)
    sessions = async_sessions(engine)
    nc = await connect(url, "naive")
    js = nc.jetstream()
    await ensure_hub_streams(js, "HUB", 1, 1, 1 << 20)
    await ensure_consumer(js, "HUB", "naive", "trades.>")
    subscription = await js.pull_subscribe("trades.>", durable="naive", stream="HUB")
    started = time.perf_counter()
    publisher = await asyncio.create_subprocess_exec(sys.executable, PUBLISHER, url, str(total))
    done = 0
    while done < total:
        try:
            batch = await subscription.fetch(100, timeout=5)
        except FetchTimeout:
            continue
        for msg in batch:
            event = TradeExecuted.model_validate_json(msg.data)
            async with sessions() as session:
                session.add(Trade(**event.model_dump(exclude={"schema_version"})))
                await session.commit()
            await msg.ack()
            done += 1
    elapsed = time.perf_counter() - started
    await publisher.wait()
    await nc.drain()
    await engine.dispose()
    return elapsed


def bench_naive(total: int) -> float:
    from bus.embedded import EmbeddedNats, free_port

    async def run(scratch: Path) -> float:
        server = EmbeddedNats(scratch / "nats", free_port(), 1 << 20)
        url = await server.start()
        try:
            return await naive_consumer(url, f"sqlite+aiosqlite:///{scratch / 'naive.db'}", total)
        finally:
            await server.stop()

    with tempfile.TemporaryDirectory() as scratch:
        elapsed = asyncio.run(run(Path(scratch)))
    rate = total / elapsed
    print(f"naive: {total:>7} trades in {elapsed:6.2f} s = {rate:>8.0f} trades/s")
    return rate


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--trades", type=int, default=200_000)
    cli.add_argument("--naive-trades", type=int, default=10_000)
    args = cli.parse_args()
    hub = bench_hub(args.trades)
    naive = bench_naive(args.naive_trades) if args.naive_trades else 0.0
    if naive:
        print(f"ratio: the hub ingests {hub / naive:.1f}x the naive pipeline's rate")


if __name__ == "__main__":
    main()
