"""Live outcomes on a database of a million trades: the outcome worker's catch-up, warm latency
of the outcome views, and the re-pairing of one late trade in a 100,000-trade group.

    .venv/bin/python -m tests.bench.bench_outcomes [--trades 1000000] [--big-group 100000]
                                                   [--requests 300] [--postgres | --database-url URL]
                                                   [--profile]

The trades (deterministic seed) come from 100 bots (source bot-000..bot-099), 2 strategies
each, 5 assets: 1,000 groups of --trades / 1,000 trades, plus one extra bot (bot-big) with
--big-group trades in one group, all interleaved at random in one stream, one second apart.
Each group alternates BUY and SELL with random quantities (partial closes and flips),
confidence 0-100, a fee of 0.1 %; 5 % of the trades are late: stamped just before their
group's previous 1 to 3 trades. They are written straight through storage.sql.trade_rows
(the outcomes are what is measured, not ingest), in transactions of 5,000.

1. catch-up   an OutcomeWorker in this process (its defaults: batches of 5,000) runs passes
              until every trade is paired; trades paired per second, beside the reference:
              core.outcomes.pair_all over the same trades in memory, one call per group.
              A sample of groups (the big one among them) is checked against the reference.
2. REST       the daemon (`python main.py`, HUB_DATABASE_URL on that database, an empty
              knowledge folder) serves GET /api/performance, /api/calibration?source=bot-NNN
              (the source changes every request) and /api/positions, each --requests times one
              after another after 20 warm-up requests; p50/p99 from send to the last byte.
3. late trade with the daemon stopped and everything paired, one trade is stored in the big
              group, stamped before all its trades, and the worker pass that re-pairs the group
              is timed (beside pair_all over that group in memory).

--profile runs the late-trade pass once more under cProfile, and profiles 20 catch-up passes
over the last trades (stored and paired after the timed catch-up), printing the top functions.

The database is a SQLite file in the scratch folder (the hub's default), or with --postgres a
fresh PostgreSQL database created and dropped here on the server of HUB_TEST_DATABASE_URL
(default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); --database-url names another
server.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import math
import os
import pstats
import random
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from core.events import TradeExecuted
from core.outcomes import LiveFill, pair_all
from handlers.events.outcome_worker import OutcomeWorker
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import upgrade
from storage.sql.outcome_rows import outcomes_of, paired_count
from storage.sql.trade_rows import insert_trades
from tests.bench.common import percentile, quiet_hub
from tests.support.postgres import PG_ENV, fresh_database

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SEED = 12
BOTS, STRATEGIES = 100, ("trend", "revert")
ASSETS = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "ADA": 0.5, "XRP": 0.6}
BIG = ("bot-big", "trend", "BTC")
LATE_SHARE, MAX_LAG = 0.05, 3
INSERT_BATCH = 5_000
WARM_UP = 20
START = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
REASONINGS = [
    "momentum and volume agree; risk budget allows a full unit",
    "mean reversion after a two-sigma move; scaling out of the position",
    "funding turned negative; trimming the long",
    "breakout above the range high on rising open interest",
    "stop hit; flattening and flipping with the trend",
    "taking profit into resistance; keeping a runner",
]

Group = tuple[str, str, str]
Spec = tuple[float, str, str, float, float, float, float, str, str]  # ts, asset, action, price, qty, fee, conf, source, strategy


# --- the trades ------------------------------------------------------------------------------

def groups() -> list[Group]:
    return [(f"bot-{b:03d}", strategy, asset) for b in range(BOTS) for strategy in STRATEGIES for asset in ASSETS]


def trade_specs(total: int, big: int) -> tuple[list[Spec], int]:
    """Every trade in the order it is stored, and how many are late."""
    rng = random.Random(SEED)
    keys = groups()
    order = [g for g in range(len(keys)) for _ in range(total // len(keys))]
    order += rng.sample(range(len(keys)), total - len(order))  # the remainder, one each
    order += [len(keys)] * big
    keys.append(BIG)
    rng.shuffle(order)
    prices = dict(ASSETS)
    count = [0] * len(keys)
    recent: list[deque[float]] = [deque(maxlen=MAX_LAG) for _ in keys]
    specs, late = [], 0
    for i, g in enumerate(order):
        source, strategy, asset = keys[g]
        prices[asset] *= math.exp(rng.gauss(0.0, 0.002))
        price = round(prices[asset], 6)
        stamp = START + i
        lag = rng.randint(1, MAX_LAG)
        if rng.random() < LATE_SHARE and len(recent[g]) >= lag:
            stamp, late = recent[g][-lag] - 0.5, late + 1  # before its group's last LAG trades
        else:
            recent[g].append(stamp)
        action = "BUY" if count[g] % 2 == 0 else "SELL"
        count[g] += 1
        quantity = round(rng.uniform(0.1, 2.0), 4)
        specs.append((stamp, asset, action, price, quantity, round(price * quantity * 0.001, 6),
                      float(rng.randint(0, 100)), source, strategy))
    return specs, late


def event(i: int, spec: Spec) -> TradeExecuted:
    stamp, asset, action, price, quantity, fee, confidence, source, strategy = spec
    return TradeExecuted(event_id=f"oc-{i}", timestamp=datetime.fromtimestamp(stamp, timezone.utc),
                         asset=asset, action=action, price=price, quantity=quantity, fee=fee,
                         confidence=confidence, source=source, strategy=strategy,
                         reasoning=REASONINGS[i % len(REASONINGS)])


def fill_of(trade_id: int, e: TradeExecuted) -> LiveFill:
    return LiveFill(trade_id, e.timestamp.timestamp(), e.action, e.price, e.quantity, e.fee, e.confidence)


async def store(engine: AsyncEngine, events: list[TradeExecuted]) -> list[tuple[int, TradeExecuted]]:
    async with async_sessions(engine)() as session, session.begin():
        return await insert_trades(session, events)


async def fill(engine: AsyncEngine, specs: list[Spec]) -> dict[Group, list[LiveFill]]:
    """Store SPECS; each group's fills with their database ids."""
    by_group: dict[Group, list[LiveFill]] = defaultdict(list)
    for first in range(0, len(specs), INSERT_BATCH):
        events = [event(i, specs[i]) for i in range(first, min(len(specs), first + INSERT_BATCH))]
        for trade_id, e in await store(engine, events):
            by_group[(e.source, e.strategy, e.asset)].append(fill_of(trade_id, e))  # type: ignore[index]
    return by_group


# --- the worker ------------------------------------------------------------------------------

@dataclass
class RePairings:
    """What the worker's "late trade: re-paired N trades of KEY in S s" lines said."""

    count: int = 0
    trades: int = 0
    seconds: float = 0.0
    largest: int = 0
    handler: logging.Handler = field(init=False)

    def __post_init__(self) -> None:
        outer = self

        class Count(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.msg.startswith("late trade"):
                    trades, _, seconds = record.args  # type: ignore[misc]
                    outer.count, outer.trades, outer.seconds = outer.count + 1, outer.trades + trades, outer.seconds + seconds
                    outer.largest = max(outer.largest, trades)

        self.handler = Count()

    @contextmanager
    def listening(self) -> Iterator[RePairings]:
        logger = logging.getLogger("handlers.events.outcome_worker")
        level = logger.level
        logger.setLevel(logging.INFO)  # setLevel, not .level: the logger caches what it enables
        logger.addHandler(self.handler)
        try:
            yield self
        finally:
            logger.removeHandler(self.handler)
            logger.setLevel(level)


async def no_publish(subject: str, payload: bytes) -> None:
    """The announcements go nowhere: NATS is not what is measured."""


async def catch_up(worker: OutcomeWorker, total: int, limit: float = 3600.0) -> tuple[int, float]:
    """Passes until TOTAL trades are paired: (passes, seconds)."""
    passes, started = 0, time.perf_counter()
    while True:
        more = await worker.run_pass()
        passes += 1
        if not more:
            async with worker.sessions() as session:
                if await paired_count(session) >= total:
                    return passes, time.perf_counter() - started
            if time.perf_counter() - started > limit:
                raise RuntimeError(f"not caught up after {limit:.0f} s")
            await asyncio.sleep(0.1)  # not holding the lease yet, or a hole in the ids


async def verify(worker: OutcomeWorker, fills: dict[Group, list[LiveFill]], sample: list[Group]) -> int:
    """Compare the stored outcomes of SAMPLE's groups with pair_all's; trades compared."""
    compared = 0
    async with worker.sessions() as session:
        for key in sample:
            expected = {o.trade_id: o for o in pair_all(fills[key])[1]}
            ids = sorted(expected)
            for first in range(0, len(ids), 10_000):
                stored = await outcomes_of(session, ids[first:first + 10_000])
                for trade_id in ids[first:first + 10_000]:
                    got, want = stored[trade_id], expected[trade_id]
                    assert got.status == want.status, (key, trade_id, got, want)
                    assert (got.realized_pnl is None) == (want.realized_pnl is None), (key, trade_id, got, want)
                    if want.realized_pnl is not None:
                        assert math.isclose(got.realized_pnl, want.realized_pnl, rel_tol=1e-9, abs_tol=1e-6), \
                            (key, trade_id, got, want)
                    compared += 1
    return compared


def reference(fills: dict[Group, list[LiveFill]]) -> float:
    """Seconds pair_all takes over every group, in memory."""
    started = time.perf_counter()
    for group in fills.values():
        pair_all(group)
    return time.perf_counter() - started


async def take_lease(worker: OutcomeWorker, limit: float = 60.0) -> None:
    """Passes (with nothing new) until WORKER holds the lease the stopped daemon's worker held."""
    deadline = time.perf_counter() + limit
    while not (await worker.run_pass(), worker.holding)[1]:
        if time.perf_counter() > deadline:
            raise RuntimeError("the lease was never free")
        await asyncio.sleep(0.5)


def profiled(profile: cProfile.Profile, top: int = 18) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    return "\n".join("    " + line.replace(str(Path.cwd()) + "/", "") for line in lines)


async def late_trade(engine: AsyncEngine, worker: OutcomeWorker, fills: list[LiveFill],
                     n: int) -> tuple[float, LiveFill]:
    """Store one BUY in the big group before all its trades; the seconds of the pass pairing it."""
    first = min(f.timestamp for f in fills) - 60.0 * n
    e = TradeExecuted(event_id=f"oc-late-{n}", timestamp=datetime.fromtimestamp(first, timezone.utc),
                      asset=BIG[2], action="BUY", price=ASSETS[BIG[2]], quantity=1.0, fee=0.06,
                      confidence=50.0, source=BIG[0], strategy=BIG[1], reasoning="a late fill")
    [(trade_id, stored)] = await store(engine, [e])
    started = time.perf_counter()
    await worker.run_pass()
    return time.perf_counter() - started, fill_of(trade_id, stored)


# --- REST ------------------------------------------------------------------------------------

async def timed(http: aiohttp.ClientSession, urls: Iterator[str], requests: int) -> tuple[list[float], int]:
    timings, size = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        async with http.get(next(urls)) as response:
            body = await response.read()
            assert response.status == 200, body[:300]
        timings.append((time.perf_counter() - started) * 1000)
        size = len(body)
    return timings, size


def endless(*urls: str) -> Iterator[str]:
    while True:
        yield from urls


async def rest(base: str, requests: int) -> dict[str, tuple[list[float], int]]:
    cases = {
        "GET /api/performance": [f"{base}/api/performance"],
        "GET /api/calibration?source=bot-NNN": [f"{base}/api/calibration?source=bot-{(42 + 37 * j) % BOTS:03d}"
                                                for j in range(BOTS)],
        "GET /api/positions": [f"{base}/api/positions"],
    }
    found = {}
    async with aiohttp.ClientSession() as http:
        for name, urls in cases.items():
            await timed(http, endless(*urls), WARM_UP)
            found[name] = await timed(http, endless(*urls), requests)
    return found


# --- a run -----------------------------------------------------------------------------------

@contextmanager
def database(scratch: Path, base_url: str | None) -> Iterator[str]:
    if base_url is None:
        yield f"sqlite+aiosqlite:///{scratch / 'data' / 'hub.db'}"  # where the daemon keeps it
    else:
        with fresh_database(base_url, "bench_outcomes") as url:
            yield url


async def prepare(url: str, total: int, big: int) -> tuple[dict[Group, list[LiveFill]], int, float]:
    specs, late = trade_specs(total, big)
    engine = create_hub_engine(url)
    await upgrade(engine)
    started = time.perf_counter()
    fills = await fill(engine, specs)
    await engine.dispose()
    return fills, late, time.perf_counter() - started


async def pair_stored(url: str, fills: dict[Group, list[LiveFill]], total: int) -> OutcomeWorker:
    engine = create_hub_engine(url)
    worker = OutcomeWorker(async_sessions(engine), no_publish)
    with RePairings().listening() as repairs:
        passes, seconds = await catch_up(worker, total)
    ref = reference(fills)
    rate, ref_rate = total / seconds, total / ref
    print(f"catch-up: {total:,} trades paired in {seconds:.1f} s ({passes} passes of up to {worker.batch}) "
          f"= {rate:,.0f} trades/s\n"
          f"  reference pair_all in memory: {ref:.2f} s = {ref_rate:,.0f} trades/s; "
          f"ratio worker / pair_all: {rate / ref_rate:.4f}\n"
          f"  late-trade re-pairings during the catch-up: {repairs.count:,}, re-reading {repairs.trades:,} "
          f"trades ({repairs.trades / total:.1f}x the table) in {repairs.seconds:.1f} s "
          f"({repairs.seconds / seconds:.0%} of the catch-up); the largest re-read {repairs.largest:,}",
          flush=True)
    rng = random.Random(SEED + 1)
    sample = [BIG, *rng.sample(sorted(k for k in fills if k != BIG), 5)]
    compared = await verify(worker, fills, sample)
    print(f"  checked: the outcomes of {compared:,} trades in {len(sample)} groups (the big one among "
          f"them) equal pair_all's", flush=True)
    return worker


async def late(url: str, fills: list[LiveFill], profile: bool) -> None:
    engine = create_hub_engine(url)
    worker = OutcomeWorker(async_sessions(engine), no_publish)
    await take_lease(worker)
    with RePairings().listening() as repairs:
        seconds, added = await late_trade(engine, worker, fills, 1)
    fills.append(added)
    started = time.perf_counter()
    pair_all(fills)
    ref = time.perf_counter() - started
    assert repairs.count == 1, "the late trade re-paired nothing"
    print(f"late trade: the pass re-pairing the big group ({repairs.trades:,} trades) took {seconds:.2f} s "
          f"(the re-pairing itself {repairs.seconds:.2f} s); pair_all of the group in memory "
          f"{ref * 1000:.0f} ms", flush=True)
    if profile:
        cpu = cProfile.Profile()
        cpu.enable()
        seconds, added = await late_trade(engine, worker, fills, 2)
        cpu.disable()
        fills.append(added)
        print(f"  profiled (cProfile) late-trade pass: {seconds:.2f} s\n{profiled(cpu)}", flush=True)
    await engine.dispose()


async def profile_catch_up(url: str, total: int, big: int) -> None:
    """20 passes over 100,000 more trades of the same kind, under cProfile."""
    specs, _ = trade_specs(100_000, 0)
    engine = create_hub_engine(url)
    worker = OutcomeWorker(async_sessions(engine), no_publish)
    await take_lease(worker)
    specs = [(s[0] + 10 * (total + big), *s[1:]) for s in specs]  # after everything stored
    events = [event(total + big + 10 + i, spec) for i, spec in enumerate(specs)]
    for first in range(0, len(events), INSERT_BATCH):
        await store(engine, events[first:first + INSERT_BATCH])
    cpu = cProfile.Profile()
    with RePairings().listening() as repairs:
        started = time.perf_counter()
        cpu.enable()
        for _ in range(20):
            await worker.run_pass()
        cpu.disable()
        seconds = time.perf_counter() - started
    print(f"profiled (cProfile) catch-up: 20 passes, {worker.paired:,} trades in {seconds:.1f} s, "
          f"{repairs.count} re-pairings re-reading {repairs.trades:,} trades\n{profiled(cpu)}", flush=True)
    await engine.dispose()


def run(base_url: str | None, total: int, big: int, requests: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as scratch, database(Path(scratch), base_url) as url:
        fills, late_count, seconds = uvloop.run(prepare(url, total, big))
        stored = sum(len(f) for f in fills.values())
        print(f"{stored:,} trades stored in {seconds:.1f} s: {len(fills) - 1} groups of ~{total // (len(fills) - 1):,} "
              f"and one of {big:,} ({BIG[0]}); {late_count:,} late ({late_count / stored:.1%})", flush=True)
        uvloop.run(pair_stored(url, fills, stored))
        hub = quiet_hub(Path(scratch), HUB_DATABASE_URL=url)
        try:
            print(f"the daemon is up after {hub.ready_after:.1f} s; {requests} sequential requests each, "
                  f"after {WARM_UP} to warm up:", flush=True)
            for name, (timings, size) in uvloop.run(rest(hub.http_url, requests)).items():
                print(f"  {name:<38} p50 {percentile(timings, 50):7.2f} ms  p99 {percentile(timings, 99):7.2f} ms"
                      f"  max {max(timings):7.2f} ms  ({size:,} bytes)", flush=True)
        finally:
            hub.stop()
        uvloop.run(late(url, fills[BIG], profile))
        if profile:
            uvloop.run(profile_catch_up(url, total, big))


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--trades", type=int, default=1_000_000, help="of the 100 bots (1,000 groups)")
    cli.add_argument("--big-group", type=int, default=100_000, help="trades of the extra bot's one group")
    cli.add_argument("--requests", type=int, default=300, help="per endpoint, after the warm-up")
    cli.add_argument("--profile", action="store_true", help="profile a late-trade pass and 20 catch-up passes")
    backend = cli.add_mutually_exclusive_group()
    backend.add_argument("--postgres", action="store_true",
                         help=f"on PostgreSQL: the server of {PG_ENV} (default {DEFAULT_PG})")
    backend.add_argument("--database-url", help="on the PostgreSQL server of this SQLAlchemy URL")
    args = cli.parse_args()
    base_url = args.database_url or (os.environ.get(PG_ENV, DEFAULT_PG) if args.postgres else None)
    print(f"outcomes of {args.trades:,} + {args.big_group:,} trades on {'PostgreSQL' if base_url else 'SQLite'}; "
          f"{os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}", flush=True)
    run(base_url, args.trades, args.big_group, args.requests, args.profile)


if __name__ == "__main__":
    main()
