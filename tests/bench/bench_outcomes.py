"""Live outcomes on a database of a million trades: the outcome worker's catch-up, warm latency
of the outcome views, and the re-pairing of one late trade in a 100,000-trade group.

    .venv/bin/python -m tests.bench.bench_outcomes [--trades 1000000] [--big-group 100000]
                                                   [--budget 120] [--tail 5000] [--requests 300]
                                                   [--postgres | --database-url URL] [--profile]

The trades (deterministic seed) come from 100 bots (source bot-000..bot-099), 2 strategies
each, 5 assets: 1,000 groups of --trades / 1,000 trades, plus one extra bot (bot-big) with
--big-group trades in one group, all interleaved at random in one stream, one second apart.
Each group alternates BUY and SELL with random quantities (partial closes and flips),
confidence 0-100, a fee of 0.1 %; 5 % of the trades are late: stamped just before their
group's previous 1 to 3 trades. They are written straight through storage.sql.trade_rows
(the outcomes are what is measured, not ingest), in transactions of 5,000.

1. catch-up   an OutcomeWorker in this process (the daemon's settings: batches of 5,000) runs
              passes from nothing until every trade is paired, or for --budget seconds; trades
              paired per second, beside the reference: core.outcomes.pair_all over the same
              trades in memory, one call per group (the pairing's own cost), and the ratio.
              Wall time and this process's CPU time (SQLite runs in it; PostgreSQL does not),
              since the machine may be shared.
   full size  if the budget ran out: every trade but the last --tail is paired directly, as
              the worker would pair them (pair_all per group, written with the worker's own
              storage.sql.outcome_rows statements, the checkpoint moved), and the worker pairs
              the last --tail trades, timed: its rate once the groups are full-sized.
   check      the stored outcomes of a sample of groups (the big one among them) must equal
              pair_all's.
2. REST       the daemon (`python main.py`, HUB_DATABASE_URL on that database, an empty
              knowledge folder) serves GET /api/performance, /api/calibration?source=bot-NNN
              (the source changes every request) and /api/positions, each --requests times one
              after another after 20 warm-up requests; p50/p99 from send to the last byte, and
              the daemon's CPU per request. On PostgreSQL the tables are VACUUM ANALYZEd first
              (what autovacuum does within a minute of a bulk load). The daemon's reasoning
              worker indexes the million trades' reasoning as it starts; the requests wait
              until it has (its time is reported), so that they are timed warm and alone.
3. late trade with the daemon stopped and everything paired, one trade is stored in the big
              group, stamped before all its trades, and the worker pass that re-pairs the group
              is timed (beside pair_all over that group in memory).

--profile runs the timed worker passes (the full-size tail, else the catch-up) and the
late-trade pass under cProfile and prints the top functions; its rates are then the profiler's.

The database is a SQLite file in the scratch folder (the hub's default), or with --postgres a
fresh PostgreSQL database created and dropped here on the server of HUB_TEST_DATABASE_URL
(default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); --database-url names another
server.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import logging
import math
import os
import pstats
import random
import subprocess
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import aiohttp
import uvloop
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.events import TradeExecuted
from core.outcomes import LiveFill, pair_all
from handlers.events.outcome_worker import LEASE, LEASE_SECONDS, OutcomeWorker
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.leases import acquire, advance
from storage.sql.migrate import upgrade
from storage.sql.models import OutcomeGroup, TradeOutcome
from storage.sql.outcome_rows import (
    GroupKey,
    create_groups,
    group_key_text,
    outcomes_of,
    paired_count,
    store_outcomes,
    store_states,
)
from storage.sql.trade_rows import NewTrade, TradeWriter
from tests.bench.common import cpu_seconds, percentile, quiet_hub
from tests.support.hub_process import HubProcess
from tests.support.postgres import PG_ENV, fresh_database
from tests.support.processes import REPO

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SEED = 12
BOTS, STRATEGIES = 100, ("trend", "revert")
ASSETS = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "ADA": 0.5, "XRP": 0.6}
BIG = ("bot-big", "trend", "BTC")
LATE_SHARE, MAX_LAG = 0.05, 3
INSERT_BATCH = 5_000
WARM_UP = 20
START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
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
Fills = dict[Group, list[LiveFill]]


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
    # model_construct: the values are valid by construction, and validating a million of them
    # would cost half a minute of a benchmark that does not measure it.
    return TradeExecuted.model_construct(
        event_id=f"oc-{i}", timestamp=datetime.fromtimestamp(stamp, UTC), asset=asset,
        action=cast(Literal["BUY", "SELL"], action), price=price, quantity=quantity, fee=fee, confidence=confidence,
        source=source, strategy=strategy, reasoning=REASONINGS[i % len(REASONINGS)])


def fill_of(trade_id: int, e: TradeExecuted) -> LiveFill:
    return LiveFill(trade_id, e.timestamp.timestamp(), e.action, e.price, e.quantity, e.fee, e.confidence)


async def store(engine: AsyncEngine, events: list[TradeExecuted]) -> list[NewTrade]:
    writer = TradeWriter(engine)
    try:
        return await writer.insert(events)
    finally:
        await writer.close()


async def fill(engine: AsyncEngine, specs: list[Spec]) -> Fills:
    """Store SPECS; each group's fills with their database ids."""
    by_group: Fills = defaultdict(list)
    for first in range(0, len(specs), INSERT_BATCH):
        events = [event(i, specs[i]) for i in range(first, min(len(specs), first + INSERT_BATCH))]
        for trade_id, e, _ in await store(engine, events):
            by_group[(e.source, e.strategy, e.asset)].append(fill_of(trade_id, e))  # type: ignore[index]
    return by_group


def up_to(fills: Fills, last_id: int) -> Fills:
    return {key: [f for f in group if f.trade_id <= last_id] for key, group in fills.items()}


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
                if str(record.msg).startswith("late trade"):
                    trades, _, seconds = cast(tuple[int, object, float], record.args)
                    outer.count, outer.trades = outer.count + 1, outer.trades + trades
                    outer.seconds, outer.largest = outer.seconds + seconds, max(outer.largest, trades)

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


class Profiler:
    """cProfile around what is timed, when asked for; else nothing."""

    def __init__(self, enabled: bool) -> None:
        self.profile = cProfile.Profile() if enabled else None

    @contextmanager
    def on(self) -> Iterator[None]:
        if self.profile is not None:
            self.profile.enable()
        try:
            yield
        finally:
            if self.profile is not None:
                self.profile.disable()

    def report(self, title: str, top: int = 20) -> None:
        if self.profile is None:
            return
        out = io.StringIO()
        stats = pstats.Stats(self.profile, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        lines = [line.replace(f"{REPO}/", "").replace(".venv/lib/python3.11/site-packages/", "")
                 for line in out.getvalue().splitlines() if line.strip()]
        print(f"  cProfile of {title}:\n" + "\n".join("    " + line for line in lines), flush=True)


async def no_publish(subject: str, payload: bytes) -> None:
    """The announcements go nowhere: NATS is not what is measured."""


@dataclass
class Stretch:
    """One timed stretch of worker passes."""

    trades: int
    passes: int
    seconds: float
    cpu: float
    repairs: RePairings
    done: bool

    @property
    def rate(self) -> float:
        return self.trades / self.seconds


async def passes(worker: OutcomeWorker, total: int, budget: float, profiler: Profiler) -> Stretch:
    """Passes until TOTAL trades are paired, or BUDGET seconds are over."""
    count, before = 0, worker.paired
    with RePairings().listening() as repairs:
        started, cpu = time.perf_counter(), time.process_time()
        while True:
            with profiler.on():
                more = await worker.run_pass()
            count += 1
            elapsed = time.perf_counter() - started
            if not more:
                async with worker.sessions() as session:
                    if await paired_count(session) >= total:
                        break
                if not worker.holding:
                    await asyncio.sleep(0.1)
            if elapsed > budget:
                break
        done = not more and await _all_paired(worker, total)
        return Stretch(worker.paired - before, count, elapsed, time.process_time() - cpu, repairs, done)


async def _all_paired(worker: OutcomeWorker, total: int) -> bool:
    async with worker.sessions() as session:
        return await paired_count(session) >= total


def reference(fills: Iterable[list[LiveFill]]) -> tuple[int, float, float]:
    """pair_all over every group, in memory: (trades, seconds, CPU seconds)."""
    groups_ = [group for group in fills if group]
    started, cpu = time.perf_counter(), time.process_time()
    for group in groups_:
        pair_all(group)
    return sum(map(len, groups_)), time.perf_counter() - started, time.process_time() - cpu


def report(title: str, stretch: Stretch, ref: tuple[int, float, float], batch: int,
           over: str = "the same") -> None:
    trades, seconds, cpu = ref
    ref_rate = trades / seconds
    r = stretch.repairs
    print(f"{title}: {stretch.trades:,} trades paired in {stretch.seconds:.1f} s ({stretch.passes} passes "
          f"of up to {batch:,}) = {stretch.rate:,.0f} trades/s; this process's CPU "
          f"{stretch.cpu / stretch.trades * 1e6:,.0f} µs/trade\n"
          f"  reference pair_all in memory over {over} {trades:,} trades: {seconds:.2f} s = "
          f"{ref_rate:,.0f} trades/s (CPU {cpu / trades * 1e6:.1f} µs/trade)\n"
          f"  ratio worker / pair_all: {stretch.rate / ref_rate:.4f} by wall time, "
          f"{cpu / trades / (stretch.cpu / stretch.trades):.4f} by CPU\n"
          f"  late-trade re-pairings: {r.count:,}, re-pairing {r.trades:,} trades "
          f"({r.trades / stretch.trades:.1f} per trade paired; the largest {r.largest:,}) in {r.seconds:.1f} s "
          f"({r.seconds / stretch.seconds:.0%} of the time)", flush=True)


async def seed(engine: AsyncEngine, fills: Fills, cut: int) -> tuple[float, tuple[int, float, float]]:
    """Pair every trade up to id CUT as the worker would, and move its checkpoint there: each
    group's pair_all, written with the worker's own statements. Seconds it took, and the
    pair_all part as reference() measures it."""
    started, cpu = time.perf_counter(), time.process_time()
    paired = {key: pair_all(group) for key, group in up_to(fills, cut).items() if group}
    ref = (sum(len(o) for _, o in paired.values()), time.perf_counter() - started, time.process_time() - cpu)
    async with async_sessions(engine)() as session, session.begin():
        await session.execute(delete(TradeOutcome))  # what the budgeted catch-up wrote
        stored = {k: i for k, i in await session.execute(select(OutcomeGroup.key, OutcomeGroup.id))}
        ids: dict[GroupKey, int] = {key: stored[group_key_text(key)] for key in paired
                                    if group_key_text(key) in stored}
        ids.update(await create_groups(session, [key for key in paired if key not in ids]))
        rows = [(ids[key], o) for key, (_, outcomes) in paired.items() for o in outcomes]
        for first in range(0, len(rows), 20_000):
            await store_outcomes(session, rows[first:first + 20_000], [])
        await store_states(session, [(ids[key], state) for key, (state, _) in paired.items()])
        await advance(session, LEASE, cut)
    return time.perf_counter() - started, ref


async def verify(engine: AsyncEngine, fills: Fills, sample: list[Group]) -> int:
    """Compare the stored outcomes of SAMPLE's groups with pair_all's; trades compared."""
    compared = 0
    async with async_sessions(engine)() as session:
        for key in sample:
            expected = {o.trade_id: o for o in pair_all(fills[key])[1]}
            ids = sorted(expected)
            for first in range(0, len(ids), 10_000):
                stored = await outcomes_of(session, ids[first:first + 10_000])
                for trade_id in ids[first:first + 10_000]:
                    got, want = stored[trade_id], expected[trade_id]
                    assert got.status == want.status, (key, trade_id, got, want)
                    assert (got.realized_pnl is None) == (want.realized_pnl is None), (key, trade_id, got, want)
                    if want.realized_pnl is not None and got.realized_pnl is not None:
                        assert math.isclose(got.realized_pnl, want.realized_pnl, rel_tol=1e-9, abs_tol=1e-6), \
                            (key, trade_id, got, want)
                    compared += 1
    return compared


async def pair_everything(url: str, fills: Fills, budget: float, tail: int, profile: bool) -> None:
    engine = create_hub_engine(url)
    worker = OutcomeWorker(async_sessions(engine), no_publish)
    total = sum(map(len, fills.values()))
    first = Profiler(profile)
    stretch = await passes(worker, total, budget, first)
    ref = reference(up_to(fills, worker.checkpoint).values())
    report("catch-up from nothing" + ("" if stretch.done else f" (stopped after the {budget:.0f} s budget)"),
           stretch, ref, worker.batch)
    first.report("the catch-up's passes")
    if not stretch.done:
        last_id = max(f.trade_id for group in fills.values() for f in group)
        cut = max(worker.checkpoint, last_id - tail)
        seconds, ref = await seed(engine, fills, cut)  # ref: the pairing's own cost per trade
        print(f"full size: trades up to id {cut:,} paired directly in {seconds:.1f} s; the worker pairs "
              f"the last {last_id - cut:,}:", flush=True)
        worker = OutcomeWorker(async_sessions(engine), no_publish, holder=worker.holder)  # nothing cached
        profiler = Profiler(profile)
        stretch = await passes(worker, total, 3600.0, profiler)
        report(f"full-size catch-up of the last {last_id - cut:,}", stretch, ref, worker.batch,
               "the (earlier)")
        profiler.report("the full-size passes")
    sample = [BIG, *random.Random(SEED + 1).sample(sorted(k for k in fills if k != BIG), 5)]
    compared = await verify(engine, fills, sample)
    print(f"  checked: the outcomes of {compared:,} trades in {len(sample)} groups (the big one among "
          f"them) equal pair_all's", flush=True)
    await engine.dispose()


async def take_lease(worker: OutcomeWorker, limit: float = 60.0) -> None:
    """Wait until WORKER's holder has the lease the stopped daemon's worker held (it expires
    LEASE_SECONDS after that worker's last pass); an idle pass does not try to take it."""
    deadline = time.perf_counter() + limit
    while True:
        async with worker.sessions() as session, session.begin():
            if await acquire(session, LEASE, worker.holder, LEASE_SECONDS) is not None:
                return
        if time.perf_counter() > deadline:
            raise RuntimeError("the lease was never free")
        await asyncio.sleep(0.5)


async def late_trade(engine: AsyncEngine, worker: OutcomeWorker, fills: list[LiveFill], n: int,
                     profiler: Profiler) -> tuple[float, float, LiveFill, DBAPIError | None]:
    """Store one BUY in the big group before all its trades; the seconds (wall, CPU) of the
    pass pairing it, and the error it failed with, if it did."""
    first = min(f.timestamp for f in fills) - 60.0 * n
    e = TradeExecuted(event_id=f"oc-late-{n}", timestamp=datetime.fromtimestamp(first, UTC),
                      asset=BIG[2], action="BUY", price=ASSETS[BIG[2]], quantity=1.0, fee=0.06,
                      confidence=50.0, source=BIG[0], strategy=BIG[1], reasoning="a late fill")
    [(trade_id, stored, _)] = await store(engine, [e])
    failed = None
    started, cpu = time.perf_counter(), time.process_time()
    with profiler.on():
        try:
            await worker.run_pass()
        except DBAPIError as error:  # reported, not raised: the figures above are still worth having
            failed = error
    return time.perf_counter() - started, time.process_time() - cpu, fill_of(trade_id, stored), failed


def first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"


async def late(url: str, fills: list[LiveFill], profile: bool) -> None:
    engine = create_hub_engine(url)
    worker = OutcomeWorker(async_sessions(engine), no_publish)
    await take_lease(worker)
    profiler = Profiler(profile)
    with RePairings().listening() as repairs:
        seconds, cpu, added, failed = await late_trade(engine, worker, fills, 1, profiler)
    fills.append(added)
    started = time.perf_counter()
    pair_all(fills)
    ref = time.perf_counter() - started
    if failed is not None:
        again = time.perf_counter()
        try:
            await worker.run_pass()
            retried = "the next pass succeeded"
        except DBAPIError as error:
            retried = f"the next pass failed the same way after {time.perf_counter() - again:.2f} s ({first_line(error)})"
        print(f"late trade: the pass re-pairing the big group ({len(fills):,} trades) FAILED after {seconds:.2f} s "
              f"({first_line(failed)}); {retried}; pair_all of the group in memory {ref * 1000:.0f} ms", flush=True)
    else:
        assert repairs.count == 1, "the late trade re-paired nothing"
        print(f"late trade: the pass re-pairing the big group ({repairs.trades:,} trades) took {seconds:.2f} s, "
              f"this process's CPU {cpu:.2f} s (the re-pairing's read and pairing {repairs.seconds:.2f} s, "
              f"the rest its writes); pair_all of the group in memory {ref * 1000:.0f} ms", flush=True)
    profiler.report("the late-trade pass")
    await engine.dispose()


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


def endless(urls: list[str]) -> Iterator[str]:
    while True:
        yield from urls


async def rest(base: str, pid: int, requests: int) -> None:
    cases = {
        "GET /api/performance": [f"{base}/api/performance"],
        "GET /api/calibration?source=bot-NNN": [f"{base}/api/calibration?source=bot-{(42 + 37 * j) % BOTS:03d}"
                                                for j in range(BOTS)],
        "GET /api/positions": [f"{base}/api/positions"],
    }
    async with aiohttp.ClientSession() as http:
        for name, urls in cases.items():
            await timed(http, endless(urls), WARM_UP)
            cpu = cpu_seconds(pid)
            timings, size = await timed(http, endless(urls), requests)
            cpu = (cpu_seconds(pid) - cpu) / requests * 1000
            print(f"  {name:<36} p50 {percentile(timings, 50):7.2f} ms  p99 {percentile(timings, 99):7.2f} ms"
                  f"  max {max(timings):7.2f} ms  daemon CPU {cpu:6.2f} ms/request  ({size:,} bytes)", flush=True)


async def vacuum_analyze(url: str) -> None:
    engine = create_hub_engine(url)
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("trades", "trade_outcomes", "outcome_groups"):
            await connection.execute(text(f"VACUUM ANALYZE {table}"))
    await engine.dispose()


# --- a run -----------------------------------------------------------------------------------

@contextmanager
def database(scratch: Path, base_url: str | None) -> Iterator[str]:
    if base_url is None:
        yield f"sqlite+aiosqlite:///{scratch / 'data' / 'hub.db'}"  # where the daemon keeps it
    else:
        with fresh_database(base_url, "bench_outcomes") as url:
            yield url


async def prepare(url: str, total: int, big: int) -> tuple[Fills, int, float]:
    specs, late_count = trade_specs(total, big)
    engine = create_hub_engine(url)
    await upgrade(engine)
    started = time.perf_counter()
    fills = await fill(engine, specs)
    await engine.dispose()
    return fills, late_count, time.perf_counter() - started


def code_version() -> str:
    """The commit measured, and whether the outcome code differs from it in the working tree."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], check=False, cwd=REPO, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    changed = git("diff", "--name-only", "HEAD", "--", "core", "storage", "handlers", "main.py").stdout.split()
    return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def reasoning_caught_up(hub: HubProcess, limit: float = 600.0) -> float:
    """Seconds until the daemon's decision memory has indexed every trade (it starts at once)."""
    started = time.perf_counter()
    while hub.get("/api/health")["reasoning"]["detail"]["trades_behind"] > 0:
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"the reasoning index was still behind after {limit:.0f} s")
        time.sleep(0.5)
    return time.perf_counter() - started


def run(base_url: str | None, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch, database(Path(scratch), base_url) as url:
        fills, late_count, seconds = uvloop.run(prepare(url, args.trades, args.big_group))
        gc.collect()
        gc.freeze()  # the reference fills (a million objects) are not the worker's: keep them out of its GC
        stored = sum(map(len, fills.values()))
        print(f"{stored:,} trades stored in {seconds:.1f} s: {len(fills) - 1} groups of ~{args.trades // (len(fills) - 1):,} "
              f"and one of {args.big_group:,} ({BIG[0]}); {late_count:,} late ({late_count / stored:.1%})", flush=True)
        uvloop.run(pair_everything(url, fills, args.budget, args.tail, args.profile))
        if base_url is not None:
            uvloop.run(vacuum_analyze(url))
        hub = quiet_hub(Path(scratch), HUB_DATABASE_URL=url)
        try:
            print(f"the daemon is up after {hub.ready_after:.1f} s", flush=True)
            caught_up = reasoning_caught_up(hub)
            print(f"  its reasoning worker indexed the trades' reasoning in {caught_up:.1f} s (the views are "
                  f"timed after: warm, with nothing in the background); {args.requests} sequential "
                  f"requests each, after {WARM_UP} to warm up:", flush=True)
            uvloop.run(rest(hub.http_url, hub.process.pid, args.requests))
        finally:
            hub.stop()
        uvloop.run(late(url, fills[BIG], args.profile))


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--trades", type=int, default=1_000_000, help="of the 100 bots (1,000 groups)")
    cli.add_argument("--big-group", type=int, default=100_000, help="trades of the extra bot's one group")
    cli.add_argument("--budget", type=float, default=120.0, help="seconds of catch-up from nothing at most")
    cli.add_argument("--tail", type=int, default=5_000, help="trades the worker pairs at full size")
    cli.add_argument("--requests", type=int, default=300, help="per endpoint, after the warm-up")
    cli.add_argument("--profile", action="store_true", help="cProfile the timed worker passes")
    backend = cli.add_mutually_exclusive_group()
    backend.add_argument("--postgres", action="store_true",
                         help=f"on PostgreSQL: the server of {PG_ENV} (default {DEFAULT_PG})")
    backend.add_argument("--database-url", help="on the PostgreSQL server of this SQLAlchemy URL")
    args = cli.parse_args()
    base_url = args.database_url or (os.environ.get(PG_ENV, DEFAULT_PG) if args.postgres else None)
    started = time.perf_counter()
    print(f"outcomes of {args.trades:,} + {args.big_group:,} trades on {'PostgreSQL' if base_url else 'SQLite'}; "
          f"code {code_version()}; {os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}", flush=True)
    run(base_url, args)
    print(f"done in {time.perf_counter() - started:.0f} s; load average after {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
