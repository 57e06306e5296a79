"""Scale-out: ingest throughput of 1, 2 and 3 hub instances sharing one NATS and one PostgreSQL.

    python -m tests.bench.bench_scale [--trades 200000] [--instances 1,2,3] [--runs 2]
                                      [--modes drain,live] [--ws] [--profile] [--database-url URL]

Each run gets a nats-server of its own (started here, JetStream in a scratch folder) and a fresh
PostgreSQL database (created and dropped here; the server is --database-url, default
HUB_TEST_DATABASE_URL). The instances are `python main.py` processes with HUB_NATS_URL and
HUB_DATABASE_URL, started one after another.

Two modes:
  drain  the instances start, the shared consumer is paused (JetStream consumer pause), the
         trades are published into the stream, and the consumer is resumed: the rate is trades /
         (first delivery after the resume -> last row; see common.resume_and_wait_for_delivery).
         No publisher competes for the cores.
  live   the instances run first; the publisher (tests/support/programs/publish_trades.py, its
         own process) streams the trades, and the rate is trades / (publisher start -> last row).

For every run the CPU time of each party is read from /proc: the hub processes, the
nats-server, the PostgreSQL backends serving the run's database, and the publisher; and the
machine's busy share of its cores over the run (other engineers' work included).

--ws connects one WebSocket client (reads, never parses) to every instance: each instance then
relays every stored trade, which is what dashboards on several instances cost.

--profile adds one drain run of a single instance with a statistical CPU profiler (SIGPROF
on the process's CPU clock, inside the measured window only), and splits the hub's CPU by
stage (decode + validate, INSERT, commit, acks, announcements, NATS receive, ...) and by library.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
from sqlalchemy.engine import make_url

from tests.bench.common import (
    cpu_seconds, machine_busy, pause_consumer, quiet_hub, resume_consumer, wait_for_rows,
)
from tests.support.hub_process import HubProcess
from tests.support.nats_server import NatsServer
from tests.support.postgres import fresh_database
from tests.support.processes import program, start_program

CORES = os.cpu_count() or 1


# --- the things a run needs -----------------------------------------------------------------

def libpq(url: str, database: str | None = None) -> str:
    """The SQLAlchemy URL as a libpq URL (for psycopg), optionally of another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


class WsDrains:
    """One reading-only WebSocket client per instance (each instance then relays every stored
    trade, its own and the others', to its client), in a process of their own."""

    def __init__(self, hubs: list[HubProcess]) -> None:
        self.process = start_program("ws_drain", *(hub.env["HUB_HTTP_PORT"] for hub in hubs),
                                     stdout=subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "connected"
        time.sleep(0.5)  # each hub subscribes to hub.persisted.> as its first client arrives

    def stop(self) -> list[int]:
        """Bytes each client received."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return list(orjson.loads(out.strip().splitlines()[-1]))


def instance(home: Path, nats_url: str, database_url: str, profile: Path | None = None) -> HubProcess:
    """One `python main.py` (optionally profiled: tests/support/programs/profiled_main.py) against
    the shared NATS and database."""
    return quiet_hub(home, program("profiled_main", str(profile)) if profile else None,
                     HUB_NATS_URL=nats_url, HUB_DATABASE_URL=database_url)


def trade_metrics(hub: HubProcess) -> dict[str, float]:
    """The trades route's series of the instance's /metrics, by name."""
    import urllib.request
    with urllib.request.urlopen(hub.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if 'route="trades"' in line and "_bucket" not in line:
            name, value = line.rsplit(" ", 1)
            found[name.split("{", 1)[0]] = float(value)
    return found


# --- measuring --------------------------------------------------------------------------------

def pg_backends(database_url: str) -> list[int]:
    """Pids of the PostgreSQL backends connected to the run's database."""
    name = make_url(database_url).database
    with psycopg.connect(libpq(database_url, "postgres"), autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    return [int(row[0]) for row in rows]


def wal_bytes(database_url: str) -> int:
    """WAL written by the whole server so far (pg_stat_wal is server-wide)."""
    with psycopg.connect(libpq(database_url, "postgres"), autocommit=True) as admin:
        return int(admin.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0])  # type: ignore[index]


@dataclass
class Snapshot:
    """CPU seconds of every party at one moment."""

    at: float
    hubs: list[float]
    nats: float
    pg: dict[int, float]
    busy: float
    total: float
    wal: int
    clients: float

    @classmethod
    def take(cls, hubs: list[HubProcess], nats_pid: int, database_url: str, drains: WsDrains | None) -> Snapshot:
        busy, total = machine_busy()
        return cls(time.perf_counter(), [cpu_seconds(h.process.pid) for h in hubs], cpu_seconds(nats_pid),
                   {pid: cpu_seconds(pid) for pid in pg_backends(database_url)}, busy, total,
                   wal_bytes(database_url), cpu_seconds(drains.process.pid) if drains else 0.0)


@dataclass
class Result:
    """One run's figures."""

    mode: str
    instances: int
    trades: int  # counted in the rate
    seconds: float
    hub_cpu: list[float]
    nats_cpu: float
    pg_cpu: float
    publisher_cpu: float
    machine_busy: float  # share of all cores busy, anyone's work
    wal_per_trade: float
    clients_cpu: float = 0.0  # the WebSocket clients' process (--ws)
    ws_bytes: list[int] = field(default_factory=list)
    persisted: list[int] = field(default_factory=list)
    duplicates: int = 0
    batches: float = 0.0
    handler_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.trades / self.seconds

    def cpu_per_trade(self, seconds: float) -> float:
        """Microseconds of CPU per trade."""
        return seconds / self.trades * 1e6


def usage(start: Snapshot, end: Snapshot) -> tuple[list[float], float, float, float, int]:
    hubs = [b - a for a, b in zip(start.hubs, end.hubs)]
    pg = sum(cpu - start.pg.get(pid, 0.0) for pid, cpu in end.pg.items())
    busy = (end.busy - start.busy) / max(end.total - start.total, 1e-9)
    return hubs, end.nats - start.nats, pg, busy, end.wal - start.wal


def children_cpu() -> float:
    usage_now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage_now.ru_utime + usage_now.ru_stime


def publish(nats_url: str, total: int) -> tuple[subprocess.Popen[str], float]:
    """Start the publisher; returns it and the children's CPU before it."""
    before = children_cpu()
    return start_program("publish_trades", nats_url, str(total)), before


def reap(publisher: subprocess.Popen[str], before: float) -> float:
    """Wait for the publisher; its CPU seconds."""
    if publisher.wait(600):
        raise RuntimeError("the publisher failed")
    return children_cpu() - before


def collect(result: Result, hubs: list[HubProcess]) -> Result:
    """Add what the instances' /metrics say about the run."""
    for hub in hubs:
        series = trade_metrics(hub)
        result.persisted.append(int(series.get("hub_events_persisted_total", 0)))
        result.duplicates += int(series.get("hub_events_duplicates_total", 0))
        result.batches += series.get("hub_batch_size_count", 0)
        result.handler_seconds += series.get("hub_handler_seconds_sum", 0)
    return result


def signal_all(hubs: list[HubProcess], signum: int | None) -> None:
    for hub in hubs:
        if signum is not None:
            hub.process.send_signal(signum)
    if signum == signal.SIGUSR2:
        time.sleep(2)  # let them write their stats


def run_once(mode: str, count: int, total: int, base_url: str, profile: Path | None = None,
             ws: bool = False) -> Result:
    with tempfile.TemporaryDirectory() as scratch_name, fresh_database(base_url, "hub_bench") as url:
        scratch = Path(scratch_name)
        with NatsServer(scratch / "nats") as server:
            nats_url, nats_pid = server.url, server.pid
            publisher_cpu = 0.0
            hubs: list[HubProcess] = []
            drains: WsDrains | None = None
            try:
                for index in range(count):  # one after another: schema creation is not shared-safe yet
                    hubs.append(instance(scratch / f"hub{index}", nats_url, url, profile))
                if ws:
                    drains = WsDrains(hubs)
                if mode == "drain":  # a backlog, then every instance at once
                    pause_consumer(nats_url, "trades")
                    publisher, before = publish(nats_url, total)
                    publisher_cpu = reap(publisher, before)
                    start = Snapshot.take(hubs, nats_pid, url, drains)
                    signal_all(hubs, signal.SIGUSR1 if profile else None)
                    start.at = resume_consumer(nats_url, "trades")
                    done = wait_for_rows(url, total)
                    signal_all(hubs, signal.SIGUSR2 if profile else None)
                else:
                    start = Snapshot.take(hubs, nats_pid, url, drains)
                    publisher, before = publish(nats_url, total)
                    done = wait_for_rows(url, total, publisher)
                end = Snapshot.take(hubs, nats_pid, url, drains)
                if mode == "live":
                    publisher_cpu = reap(publisher, before)
                hub_cpu, nats_cpu, pg_cpu, busy, wal = usage(start, end)
                result = Result(mode, count, total, done - start.at, hub_cpu, nats_cpu, pg_cpu,
                                publisher_cpu, busy, wal / total, end.clients - start.clients)
                collect(result, hubs)
                if drains is not None:
                    time.sleep(1)  # the last frames
                    result.ws_bytes = drains.stop()
                return result
            finally:
                if drains is not None and drains.process.poll() is None:
                    drains.process.kill()
                for hub in hubs:
                    hub.stop()


# --- the profile ---------------------------------------------------------------------------------

# What a sample was doing: the first rule (in this order) that matches a frame of its stack.
STAGES = (
    ("decode + validate (orjson, pydantic)", ("bus/codec.py:decode",)),
    ("stored JSON (PostgreSQL's batch, the announcements)",
     ("storage/sql/trade_rows.py:stored_json", "handlers/events/trade_executed.py:trade_document")),
    # SQLAlchemy runs its sync core in a greenlet, whose stack does not reach the caller.
    ("INSERT: build + execute (SQLAlchemy, asyncpg)",
     ("storage/sql/trade_rows.py:_insert_postgresql", "sqlalchemy/engine/base.py:_exec_insertmany_context",
      "sqlalchemy/engine/default.py:_init_compiled", "storage/sql/models.py:process_bind_param")),
    ("replay lookup (SELECT of duplicates)", ("storage/sql/trade_rows.py:stored_trades",)),
    ("session, BEGIN/COMMIT, pool",
     ("handlers/events/trade_executed.py:persist_trades", "sqlalchemy/orm/", "sqlalchemy/pool/")),
    ("other SQLAlchemy (in its greenlet)", ("sqlalchemy/",)),
    ("acks (nats-py publish)", ("nats/aio/msg.py:ack",)),
    ("announcements (nats-py publish)", ("nats/aio/client.py:publish",)),
    ("NATS receive (parse, headers, Msg, dispatch)",
     ("nats/protocol/parser.py:", "nats/aio/client.py:_process_msg", "nats/aio/subscription.py:",
      "nats/aio/client.py:_read_loop", "bus/pull.py:_on_message", "asyncio/streams.py:")),
    ("NATS flush (socket writes)", ("nats/aio/client.py:_flusher",)),
    ("consume loop (batching, bookkeeping)", ("bus/consumer.py:", "bus/pull.py:")),
    ("HTTP (/metrics polls, none in the window)", ("aiohttp/",)),
)
LOOP = "asyncio/runners.py:run"  # innermost: uvloop's own C code was running, between callbacks
# Which library the innermost Python frame belongs to.
LAYERS = (("pydantic", "pydantic"), ("SQLAlchemy", "sqlalchemy"), ("asyncpg", "asyncpg"),
          ("nats-py", "/nats/"), ("asyncio", "asyncio/"), ("the hub's own code", "/work/main/"))


def classify(stack: list[str], rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    if stack and stack[0].endswith(LOOP):
        return "event loop (uvloop, between callbacks)"
    for label, keys in rules:
        if any(key in frame for frame in stack for key in keys):
            return label
    return "other"


def split(samples: list[tuple[int, list[str]]], by_layer: bool) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for count, stack in samples:
        if by_layer:
            label = next((name for name, key in LAYERS if stack and key in stack[0]), "other (stdlib, uvloop)")
        else:
            label = classify(stack, STAGES)
        totals[label] = totals.get(label, 0) + count
    return sorted(totals.items(), key=lambda item: -item[1])


def profile_run(total: int, base_url: str, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = keep or Path(scratch) / "samples.json"
        result = run_once("drain", 1, total, base_url, profile=path)
        samples = [(int(count), stack) for count, stack in orjson.loads(path.read_bytes())]
    taken = sum(count for count, _ in samples)
    print(f"\nProfile: one instance, drain of {total} trades in {result.seconds:.1f} s = {result.rate:,.0f} "
          f"trades/s (profiled); in that window the hub used {result.hub_cpu[0]:.2f} s CPU "
          f"({result.cpu_per_trade(result.hub_cpu[0]):.0f} µs/trade, {result.hub_cpu[0] / result.seconds:.0%} "
          f"of a core), the PostgreSQL backends {result.pg_cpu:.2f} s, nats-server {result.nats_cpu:.2f} s; "
          f"{taken} samples (one per {result.hub_cpu[0] / taken * 1000:.1f} ms of the hub's CPU)")
    for title, by_layer in (("hub CPU by stage", False), ("hub CPU by innermost library", True)):
        print(f"{title:<50}{'share':>7}{'µs/trade':>10}")
        for label, count in split(samples, by_layer):
            share = count / taken
            print(f"  {label:<48}{share:>7.1%}{share * result.cpu_per_trade(result.hub_cpu[0]):>10.1f}")


# --- the report ---------------------------------------------------------------------------------

def print_table(results: list[Result]) -> None:
    print("\nCPU in µs per trade, read from /proc over the measured window. 'commit' is the share of")
    print("each instance's time spent persisting + acking a batch (hub_handler_seconds). 'others' is")
    print("the cores busy with anything else (other engineers' work, PostgreSQL's background writers).")
    print(f"\n{'mode':<6}{'inst':>5}{'trades':>8}{'secs':>7}{'trades/s':>10}{'hub':>7}{'pg':>6}{'nats':>6}"
          f"{'pub':>6}{'commit':>7}{'busy':>6}{'others':>7}{'WAL B':>7}{'batch':>7}  persisted by instance")
    for r in results:
        mean_batch = r.trades / r.batches if r.batches else 0.0
        publisher = r.publisher_cpu if r.mode == "live" else 0.0
        ours = sum(r.hub_cpu) + r.pg_cpu + r.nats_cpu + publisher + r.clients_cpu
        others = max(0.0, r.machine_busy * CORES - ours / r.seconds)
        print(f"{r.mode:<6}{r.instances:>5}{r.trades:>8}{r.seconds:>7.2f}{r.rate:>10,.0f}"
              f"{r.cpu_per_trade(sum(r.hub_cpu)):>7.1f}{r.cpu_per_trade(r.pg_cpu):>6.1f}"
              f"{r.cpu_per_trade(r.nats_cpu):>6.1f}{r.cpu_per_trade(publisher):>6.1f}"
              f"{r.handler_seconds / (r.seconds * r.instances):>7.0%}{r.machine_busy:>6.0%}{others:>7.2f}"
              f"{r.wal_per_trade:>7.0f}{mean_batch:>7.0f}  {' / '.join(str(p) for p in r.persisted)}")
        if r.ws_bytes:
            print(f"      WebSocket clients: {' / '.join(f'{b / r.trades:.0f}' for b in r.ws_bytes)} bytes per trade "
                  f"received, their process {r.cpu_per_trade(r.clients_cpu):.1f} µs/trade")
        if r.duplicates:
            print(f"      ({r.duplicates} duplicates: redeliveries)")


def print_summary(results: list[Result]) -> None:
    print(f"\n{'mode':<6}{'instances':>10}{'median trades/s':>17}{'runs':>30}")
    for mode in dict.fromkeys(r.mode for r in results):
        for count in sorted({r.instances for r in results if r.mode == mode}):
            rates = [r.rate for r in results if r.mode == mode and r.instances == count]
            print(f"{mode:<6}{count:>10}{statistics.median(rates):>17,.0f}"
                  f"{', '.join(f'{rate:,.0f}' for rate in rates):>30}")


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--trades", type=int, default=200_000)
    cli.add_argument("--instances", default="1,2,3")
    cli.add_argument("--runs", type=int, default=2)
    cli.add_argument("--modes", default="drain,live")
    cli.add_argument("--ws", action="store_true",
                     help="one reading WebSocket client per instance (each instance relays every trade)")
    cli.add_argument("--profile", action="store_true", help="add a profiled single-instance drain")
    cli.add_argument("--profile-trades", type=int, default=100_000)
    cli.add_argument("--profile-out", type=Path, help="keep the samples (JSON) here")
    cli.add_argument("--database-url", default=os.environ.get(
        "HUB_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"))
    args = cli.parse_args()
    print(f"{CORES} cores; load average before: {os.getloadavg()[0]:.2f}; {args.trades} trades per run")
    results: list[Result] = []
    for _ in range(args.runs):  # interleaved, so a noisy minute does not hit one row only
        for mode in args.modes.split(","):
            for count in (int(n) for n in args.instances.split(",")):
                result = run_once(mode, count, args.trades, args.database_url, ws=args.ws)
                results.append(result)
                print(f"  {mode} x{count}: {result.rate:,.0f} trades/s", flush=True)
    print_table(results)
    print_summary(results)
    if args.profile:
        profile_run(args.profile_trades, args.database_url, args.profile_out)
    print(orjson.dumps([r.__dict__ for r in results]).decode(), file=sys.stderr)


if __name__ == "__main__":
    main()
