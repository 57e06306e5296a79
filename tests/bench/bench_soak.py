"""Soak: the daemon under a steady load for a long time (issue 6, item 9).

    .venv/bin/python -m tests.bench.bench_soak [--seconds 600] [--rate 2000] [--clients 100]
                                               [--measuring 5] [--warmup 60]

The daemon runs as `python main.py` (HubProcess: its own embedded nats-server and SQLite
in a scratch folder, with a copy of knowledge/ that it indexes at start; the load begins once
every file is indexed, so that the embedding model does not compete with it). Then, for SECONDS:

- the publisher process (tests/support/programs/publish_trades.py) sends RATE trades/s,
  acknowledged by the stream, each stamped with its send time;
- CLIENTS WebSocket clients are connected. MEASURING of them parse every frame and time each
  trade from publish to receipt; the rest only drain their sockets, so that this process does
  not spend a core parsing 100 copies of every frame (as in bench_latency);
- one knowledge search a second, `GET /api/knowledge/search?q=…&k=5`, with the questions of
  tests/data/knowledge_eval.json in turn;
- the hub's RSS (/proc/<pid>/status VmRSS) is sampled every 5 s, and the nats-server's too;
- the daemon's log output (level WARNING) is read throughout; its ERROR lines are counted at the end.

It prints per-minute p50/p99 latency and search latency, RSS after the warm-up and at the end
with the growth, and the error count. Targets (issue 6): RSS growth ≤ 10 %, no error logs,
p99 steady.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson

from core.knowledge import DOMAINS
from storage.rag.files import walk
from tests.bench.common import cpu_seconds, open_drain, percentile, quiet_hub
from tests.support.hub_process import HubProcess
from tests.support.processes import REPO, program

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ")
RSS_EVERY = 5.0


@dataclass
class DaemonLog:
    """The daemon's log lines counted by level, with the first few that are not INFO."""

    levels: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def count(self, output: str) -> None:
        for line in output.splitlines():
            match = LOG_LINE.match(line)
            level = match.group(1) if match else "other"
            self.levels[level] = self.levels.get(level, 0) + 1
            if level != "INFO" and len(self.examples) < 10:
                self.examples.append(line.rstrip())

    @property
    def errors(self) -> int:
        return self.levels.get("ERROR", 0) + self.levels.get("CRITICAL", 0)


@dataclass
class Minutes:
    """Samples bucketed by the minute of the run they belong to."""

    values: dict[int, array[float]] = field(default_factory=dict)

    def add(self, minute: int, value: float) -> None:
        self.values.setdefault(minute, array("d")).append(value)

    def summary(self, minute: int) -> tuple[int, float, float, float]:
        found = list(self.values.get(minute, ()))
        if not found:
            return 0, float("nan"), float("nan"), float("nan")
        return len(found), percentile(found, 50), percentile(found, 99), max(found)


@dataclass
class Soak:
    """What one run measures."""

    started_ns: int
    latencies: Minutes = field(default_factory=Minutes)
    searches: Minutes = field(default_factory=Minutes)
    search_failures: int = 0
    # (seconds into the run, hub RSS KiB, nats-server RSS KiB, hub CPU seconds so far)
    rss: list[tuple[float, int, int, float]] = field(default_factory=list)
    received: list[int] = field(default_factory=list)  # per measuring client
    drains_lost: int = 0  # draining clients the hub disconnected

    def minute_of(self, ns: int) -> int:
        return int((ns - self.started_ns) / 60e9)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def sample_rss(soak: Soak, hub_pid: int, until: float) -> None:
    nats_pids = child_pids(hub_pid)
    while time.monotonic() < until:
        nats = sum(rss_kib(p) for p in nats_pids)
        soak.rss.append(((time.time_ns() - soak.started_ns) / 1e9, rss_kib(hub_pid), nats, cpu_seconds(hub_pid)))
        await asyncio.sleep(RSS_EVERY)


async def measure(ws: aiohttp.ClientWebSocketResponse, soak: Soak, total: int, until: float) -> None:
    seen = 0
    while seen < total and time.monotonic() < until:
        try:
            frame = await ws.receive(timeout=max(0.1, until - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.time_ns()
        for event in orjson.loads(frame.data)["events"]:
            sent = int(event["data"]["strategy"])
            soak.latencies.add(soak.minute_of(sent), (now - sent) / 1e6)
            seen += 1
    soak.received.append(seen)


async def search_every_second(session: aiohttp.ClientSession, http_url: str, soak: Soak, until: float) -> None:
    cases = orjson.loads((REPO / "tests/data/knowledge_eval.json").read_bytes())["cases"]
    questions = [case["query"] for case in cases]
    next_at, i = time.monotonic(), 0
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += 1.0
        started = time.time_ns()
        async with session.get(f"{http_url}/api/knowledge/search",
                               params={"q": questions[i % len(questions)], "k": "5"}) as response:
            found = (await response.json()).get("results") if response.status == 200 else None
        if not found:
            soak.search_failures += 1
        soak.searches.add(soak.minute_of(started), (time.time_ns() - started) / 1e6)
        i += 1


async def wait_for_index(session: aiohttp.ClientSession, http_url: str, root: Path, timeout: float = 600) -> int:
    """Wait until the start-up indexing has stored every file of ROOT; returns the chunks."""
    expected = sum(len(walk(root, domain)[0]) for domain in DOMAINS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{http_url}/api/knowledge") as response:
            domains = (await response.json())["domains"]
        if sum(d["files"] for d in domains) >= expected:
            return sum(d["chunks"] for d in domains)
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the knowledge base ({expected} files) was not indexed in {timeout:.0f} s")


async def health(session: aiohttp.ClientSession, http_url: str) -> dict[str, Any]:
    async with session.get(f"{http_url}/api/health") as response:
        return cast(dict[str, Any], await response.json())


async def wait_for_clients(session: aiohttp.ClientSession, http_url: str, clients: int) -> None:
    for _ in range(100):
        if (await health(session, http_url))["websocket"]["clients"] == clients:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the hub does not count {clients} WebSocket clients")


async def run(hub: HubProcess, args: argparse.Namespace) -> tuple[Soak, dict[str, Any], float]:
    total = int(args.rate * args.seconds)
    host, port = hub.http_url.removeprefix("http://").split(":")
    async with aiohttp.ClientSession() as session:
        chunks = await wait_for_index(session, hub.http_url, hub.knowledge_dir)
        print(f"knowledge base indexed: {chunks} chunks; starting the load", flush=True)
        drains = [await open_drain(host, int(port)) for _ in range(args.clients - args.measuring)]
        sockets = [await session.ws_connect(f"{hub.http_url}/ws", max_msg_size=0) for _ in range(args.measuring)]
        await wait_for_clients(session, hub.http_url, args.clients)
        soak = Soak(time.time_ns())
        started = time.monotonic()
        until = started + args.seconds + 60
        publisher = await asyncio.create_subprocess_exec(
            *program("publish_trades", hub.nats_url, str(total), "--rate", str(args.rate), "--prefix", "soak",
                    "--stamp"),
            cwd=REPO)
        background = [asyncio.create_task(sample_rss(soak, hub.process.pid, started + args.seconds + 2)),
                      asyncio.create_task(search_every_second(session, hub.http_url, soak, started + args.seconds))]
        await asyncio.gather(*(measure(ws, soak, total, until) for ws in sockets))
        await publisher.wait()
        await asyncio.gather(*background)
        elapsed = time.monotonic() - started
        end = await health(session, hub.http_url)
        for ws in sockets:
            await ws.close()
    soak.drains_lost = sum(d.lost for d in drains)
    for drain in drains:
        if drain.transport is not None:
            drain.transport.close()
    return soak, end, elapsed


def report(soak: Soak, end: dict[str, Any], log: DaemonLog, args: argparse.Namespace, elapsed: float) -> None:
    total = int(args.rate * args.seconds)
    print(f"\nsoak: {args.seconds:.0f} s at {args.rate:.0f} trades/s ({total:,} trades), {args.clients} "
          f"WebSocket clients ({args.measuring} measuring), a knowledge search every second; "
          f"load done after {elapsed:.0f} s")
    print(f"{'minute':>6} {'trades':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'searches':>8} {'s.p50 ms':>8} {'s.p99 ms':>8} {'hub RSS MiB':>11} {'hub CPU':>7}")
    for minute in sorted(soak.latencies.values):
        count, p50, p99, top = soak.latencies.summary(minute)
        searches, s50, s99, _ = soak.searches.summary(minute)
        samples = [s for s in soak.rss if minute * 60 <= s[0] < (minute + 1) * 60]
        rss = samples[-1][1] / 1024 if samples else float("nan")
        cpu = ((samples[-1][3] - samples[0][3]) / (samples[-1][0] - samples[0][0]) * 100
               if len(samples) > 1 else float("nan"))
        print(f"{minute + 1:>6} {count // max(1, args.measuring):>8} {p50:>8.2f} {p99:>8.2f} {top:>8.2f} "
              f"{searches:>8} {s50:>8.1f} {s99:>8.1f} {rss:>11.1f} {cpu:>6.0f}%")
    after_warmup = [s for s in soak.rss if s[0] >= args.warmup] or soak.rss
    first, last = after_warmup[0], soak.rss[-1]
    growth = (last[1] - first[1]) / first[1] * 100
    print(f"hub RSS: {first[1] / 1024:.1f} MiB at {first[0]:.0f} s (after the warm-up) -> "
          f"{last[1] / 1024:.1f} MiB at {last[0]:.0f} s: {growth:+.1f} % "
          f"(max {max(s[1] for s in soak.rss) / 1024:.1f} MiB)")
    print(f"nats-server RSS: {first[2] / 1024:.1f} -> {last[2] / 1024:.1f} MiB")
    counted = [v for m, values in soak.latencies.values.items() if m * 60 >= args.warmup for v in values]
    if counted:
        print(f"latency after the warm-up: p50 {percentile(counted, 50):.2f} ms, p99 "
              f"{percentile(counted, 99):.2f} ms, max {max(counted):.2f} ms")
    timed = [v for values in soak.searches.values.values() for v in values]
    print(f"search: {len(timed)} requests, p50 {percentile(timed, 50):.1f} ms, p99 "
          f"{percentile(timed, 99):.1f} ms, max {max(timed):.1f} ms, failures {soak.search_failures}")
    consumers = end.get("consumers", {})
    trades = consumers.get("trades", {}) if isinstance(consumers, dict) else {}
    print(f"measuring clients received {soak.received} of {total:,}; draining clients disconnected: "
          f"{soak.drains_lost}; hub at the end: status {end.get('status')}, persisted "
          f"{trades.get('persisted')}, pending {trades.get('pending')}, websocket {end.get('websocket')}")
    hub_cpu = (last[3] - soak.rss[0][3]) / (last[0] - soak.rss[0][0]) * 100
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU: hub {hub_cpu:.0f}% of a core over the run; this process (clients, searches) "
          f"{(own.ru_utime + own.ru_stime) / elapsed * 100:.0f}%; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"daemon log lines by level: {log.levels or 'none'}; ERROR lines: {log.errors}")
    for line in log.examples:
        print(f"  {line}")


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--seconds", type=float, default=600)
    cli.add_argument("--rate", type=float, default=2000)
    cli.add_argument("--clients", type=int, default=100)
    cli.add_argument("--measuring", type=int, default=5)
    cli.add_argument("--warmup", type=float, default=None, help="default: 60 s, or a quarter of a shorter run")
    args = cli.parse_args()
    if args.warmup is None:
        args.warmup = min(60.0, args.seconds / 4)
    log = DaemonLog()
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(REPO / "knowledge", Path(scratch) / "knowledge")
        hub = quiet_hub(Path(scratch))
        try:
            import uvloop
            soak, end, elapsed = uvloop.run(run(hub, args))
        finally:
            hub.stop()
            log.count(hub.output)
    report(soak, end, log, args, elapsed)


if __name__ == "__main__":
    main()
