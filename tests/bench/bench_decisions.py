"""Decision memory at scale: the reasoning worker's catch-up over a million stored trades, and
warm search / similar / recall latency, query embedding included.

    .venv/bin/python -m tests.bench.bench_decisions [--trades 1000000] [--distinct 100000]
                                                    [--queries 200] [--embed-budget 900]
                                                    [--round-texts 4096]
                                                    [--reuse FOLDER]

The trades (deterministic seed) are written straight into a SQLite file in a scratch folder
(ingest is measured elsewhere), their reasoning drawn from --distinct texts written from the
evaluation set's twelve themes (tests/support/reasoning_eval.py) with varied numbers, assets
and context, so bots repeat texts as they do.

1. mapping    the worker records which text each trade gave (a repeated text costs a
              lookup): trades per second over all --trades, beside reading the same trades
              in the same batches and writing nothing (the reference), and the ratio.
2. embedding  the worker embeds every distinct text, in its batches, into Chroma: texts per
              second, beside the embedder's own rate (embed() on as many of the same texts,
              nothing else), and the ratio. The two take turns in rounds of --round-texts
              texts, the reference first in every other round, so that the machine's drift
              over the minutes falls on both alike; the ratio of each round is printed too.
              Past --embed-budget seconds the rest are embedded untimed (step 3 needs the
              whole index).
3. queries    DecisionMemory.search (k=10), .similar (k=20, scope all, a random trade each
              time) and .recall (k=10) --queries times each after 20 warm-ups: p50 / p99.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from core.decisions import DecisionSearch, RecallRequest, SimilarQuery
from core.settings import Settings
from handlers.events.decision_questions import DecisionMemory
from handlers.events.reasoning_worker import LEASE, ReasoningWorker
from storage.rag.reasoning_index import ReasoningIndex
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.leases import acquire
from storage.sql.migrate import upgrade
from storage.sql.models import Trade
from storage.sql.reasoning_rows import trades_after
from tests.support.reasoning_eval import ASSETS, CONTEXT, QUERIES, THEMES


def distinct_texts(count: int, seed: int = 11) -> list[str]:
    """COUNT different reasonings from the twelve themes."""
    rng, seen = random.Random(seed), dict[str, None]()
    patterns = [p for theme in THEMES.values() for p in theme]
    while len(seen) < count:
        text = (rng.choice(patterns).format(a=rng.choice(ASSETS), n=rng.randint(10, 99), m=rng.randint(10, 999))
                + rng.choice(CONTEXT) + f"; size {rng.randint(1, 99)}% of book, id {rng.randint(1, 10**6)}")
        seen[text] = None
    return list(seen)


async def store_trades(sessions: Any, texts: list[str], trades: int, seed: int = 12) -> None:
    """TRADES rows, one second apart, each reasoning one of TEXTS (each at least once)."""
    rng, start = random.Random(seed), time.time() - trades
    for first in range(0, trades, 10_000):
        rows = [{"event_id": f"bench-{i}", "timestamp": _at(start + i), "asset": rng.choice(ASSETS),
                 "action": rng.choice(("BUY", "SELL")), "price": 100.0, "quantity": 1.0,
                 "reasoning": texts[i] if i < len(texts) else rng.choice(texts),
                 "confidence": rng.randint(0, 100), "source": f"bot-{rng.randrange(100):03d}",
                 "strategy": "s", "fee": 0.0} for i in range(first, min(first + 10_000, trades))]
        async with sessions() as session, session.begin():
            await session.execute(insert(Trade), rows)


def _at(epoch: float) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc)


async def read_all(sessions: Any, batch: int) -> float:
    """Seconds to read every trade's (id, reasoning) in the worker's batches: the reference."""
    started, mark = time.perf_counter(), 0
    while trades := await _read(sessions, mark, batch):
        mark = trades[-1][0]
    return time.perf_counter() - started


async def _read(sessions: Any, mark: int, batch: int) -> list[tuple[int, str]]:
    async with sessions() as session:
        return await trades_after(session, "live", mark, batch)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def timed(call: Any, arguments: list[Any], warm: int = 20) -> list[float]:
    for argument in arguments[:warm]:
        await call(argument)
    samples = []
    for argument in arguments:
        started = time.perf_counter()
        await call(argument)
        samples.append(time.perf_counter() - started)
    return samples


async def main(args: argparse.Namespace) -> None:
    folder = args.reuse or Path(tempfile.mkdtemp(prefix="bench-decisions-"))
    print(f"scratch folder {folder}")
    settings = Settings(data_dir=folder, database_url=f"sqlite+aiosqlite:///{folder / 'hub.db'}")
    engine = create_hub_engine(settings.database_url)
    sessions = async_sessions(engine)
    index = ReasoningIndex(settings)
    worker = ReasoningWorker(sessions, index)
    if args.reuse is None:
        await upgrade(engine)
        await build(sessions, index, worker, args)
    await query(DecisionMemory(sessions, worker), args)
    await asyncio.to_thread(index.close)
    await engine.dispose()


async def embedder_seconds(index: ReasoningIndex, sample: list[str]) -> float:
    """Seconds the embedder alone takes over SAMPLE: the reference."""
    started = time.perf_counter()
    await asyncio.to_thread(index.embedder.embed, sample)
    return time.perf_counter() - started


async def worker_seconds(index: ReasoningIndex, worker: ReasoningWorker, generation: int, texts: int) -> float:
    """Seconds the worker takes to embed and store about TEXTS more texts (whole batches)."""
    started, target = time.perf_counter(), index.embedded + texts
    while index.embedded < target and await worker._embed(generation):
        pass
    await worker.stored()  # the round's last batch into Chroma before the reference runs
    return time.perf_counter() - started


async def build(sessions: Any, index: ReasoningIndex, worker: ReasoningWorker, args: argparse.Namespace) -> None:
    """Steps 1 and 2: the trades stored, mapped and embedded, timed."""
    texts = distinct_texts(args.distinct)
    started = time.perf_counter()
    await store_trades(sessions, texts, args.trades)
    print(f"stored {args.trades:,} trades with {len(texts):,} distinct texts in {time.perf_counter() - started:.0f} s")
    async with sessions() as session, session.begin():
        generation = await acquire(session, LEASE, worker.holder, 3600)
    assert generation is not None
    await asyncio.to_thread(index.embedder.embed, texts[:64])  # the model loaded before timing

    reading = await read_all(sessions, worker.batch)
    started = time.perf_counter()
    while await worker._map(generation):
        pass
    mapping = time.perf_counter() - started
    print(f"1. mapping    {worker.mapped:,} trades in {mapping:.1f} s: {worker.mapped / mapping:,.0f} trades/s; "
          f"reading them alone (the same batches, nothing written): {worker.mapped / reading:,.0f} trades/s; "
          f"ratio {reading / mapping:.2f}")

    sample = texts[:args.round_texts]
    spent = {"worker": 0.0, "alone": 0.0}
    rounds, deadline = 0, time.perf_counter() + args.embed_budget
    while time.perf_counter() < deadline and index.embedded < len(texts):
        done, alone_first = index.embedded, rounds % 2 == 1
        alone = await embedder_seconds(index, sample) if alone_first else 0.0
        worked = await worker_seconds(index, worker, generation, args.round_texts)
        alone += 0.0 if alone_first else await embedder_seconds(index, sample)
        count = index.embedded - done
        alone *= count / len(sample)  # the worker's round ends on a whole batch
        spent["worker"] += worked
        spent["alone"] += alone
        rounds += 1
        print(f"   round {rounds}: {count:,} texts, worker {count / worked:,.0f} texts/s, "
              f"alone {count / alone:,.0f}, ratio {alone / worked:.2f}")
    if rounds:
        rate, own_rate = index.embedded / spent["worker"], index.embedded / spent["alone"]
        print(f"2. embedding  {index.embedded:,} texts in {spent['worker']:.0f} s: {rate:,.0f} texts/s; the embedder "
              f"alone on as many: {own_rate:,.0f} texts/s; ratio {rate / own_rate:.2f} ({rounds} rounds)")
    while await worker._embed(generation):  # the rest, so that the queries see a whole index
        pass
    await worker.sync_lexical(limit=args.distinct + 1)


async def query(memory: DecisionMemory, args: argparse.Namespace) -> None:
    """Step 3: warm latency of the three questions."""
    rng = random.Random(5)
    queries = [QUERIES[i % len(QUERIES)][0] for i in range(args.queries)]
    searched = await timed(lambda q: memory.search(DecisionSearch(q=q, k=10)), queries)
    trade_ids = [rng.randint(args.trades // 2, args.trades) for _ in range(args.queries)]
    similar = await timed(lambda i: memory.similar(i, SimilarQuery(k=20, scope="all")), trade_ids)
    recalled = await timed(lambda q: memory.recall(RecallRequest(reasoning=q, k=10)), queries)
    print(f"3. queries    search {percentiles(searched)}; similar {percentiles(similar)}; "
          f"recall {percentiles(recalled)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-budget", type=float, default=900.0)
    parser.add_argument("--round-texts", type=int, default=4096, help="texts per round of step 2")
    parser.add_argument("--reuse", type=Path, help="a scratch folder of an earlier run: only step 3")
    asyncio.run(main(parser.parse_args()))
