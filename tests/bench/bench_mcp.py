"""MCP over stdio, as a host meets it: warm tool-call round trips and start-up to initialize.

    .venv/bin/python -m tests.bench.bench_mcp [--calls 300] [--starts 10] [--trades 10000]

The daemon (`python main.py`, SQLite) runs in a scratch folder with the shipped knowledge base
(indexed before measuring) and --trades live trades of 20 bots (alternating BUY and SELL per
group, so the outcome worker pairs them; waited for). One `python main.py mcp` is spawned
through the SDK's stdio client, and each tool is called --calls times one after another after
20 warm-up calls, timed from the client's call to its parsed answer:

  search_knowledge    the query changes every call (10 trading questions)
  recall_decisions    the same queries as draft reasoning, if the hub serves /api/trades/recall
  agent_performance   all groups (the default), and one agent's (the source changes every call)

Start-up: --starts times, a fresh `python main.py mcp` is spawned beside the running hub and
timed from spawn to a completed initialize (the SDK client's connect), as a host starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from mcp import Client, StdioServerParameters

from bus.publish import HubPublisher
from core.settings import Settings
from tests.bench.common import machine_busy, percentile, quiet_hub
from tests.support.hub_process import HubProcess
from tests.support.processes import REPO
from tests.support.waiting import wait_until

QUERIES = ["RSI oversold bounce", "position sizing with the Kelly criterion", "funding rate extreme",
           "MACD crossover confirmation", "drawdown control after losses", "fear and greed index",
           "exchange outflows bullish", "volatility targeting leverage", "momentum across assets",
           "stop loss placement"]


async def seed(hub: HubProcess, trades: int) -> None:
    """TRADES live trades, 20 bots × 5 assets, one second apart; each group alternates sides."""
    rng, start = random.Random(7), datetime(2024, 1, 1, tzinfo=UTC)
    async with await HubPublisher.connect(Settings(nats_url=hub.nats_url), "bench-mcp") as publisher:
        sends = []
        for i in range(trades):
            bot, asset = i % 20, ("BTC", "ETH", "SOL", "ADA", "XRP")[(i // 20) % 5]
            sends.append(publisher.publish_trade(
                event_id=f"bench-{i}", timestamp=start + timedelta(seconds=i), asset=asset,
                action="BUY" if (i // 100) % 2 == 0 else "SELL", price=100 + rng.random() * 10,
                quantity=1.0, confidence=rng.uniform(0, 100), source=f"bot-{bot:02d}",
                strategy="bench", reasoning=QUERIES[i % len(QUERIES)]))
            if len(sends) == 500:
                await asyncio.gather(*sends)
                sends = []
        await asyncio.gather(*sends)


def get(hub: HubProcess, path: str, body: Any = None) -> Any:
    """REST, for waiting until the hub has caught up."""
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(hub.http_url + path, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return orjson.loads(response.read())


def recall_served(hub: HubProcess) -> bool:
    """Whether the hub answers POST /api/trades/recall (decision memory, issue 13)."""
    try:
        get(hub, "/api/trades/recall", {"reasoning": "RSI oversold bounce"})
    except urllib.error.HTTPError as error:
        return error.code != 404
    return True


async def timed_calls(client: Client, tool: str, arguments: list[dict[str, Any]], calls: int) -> list[float]:
    """Milliseconds per call, after 20 warm-up calls, the arguments taken in turn."""
    timings = []
    for i in range(20 + calls):
        began = time.perf_counter()
        result = await client.call_tool(tool, arguments[i % len(arguments)])
        elapsed = (time.perf_counter() - began) * 1000
        if result.is_error:
            raise SystemExit(f"{tool} failed: {result.content}")
        if i >= 20:
            timings.append(elapsed)
    return timings


def server(hub: HubProcess) -> StdioServerParameters:
    """`python main.py mcp` in the hub's environment, as a host launches it."""
    return StdioServerParameters(command=sys.executable, args=["main.py", "mcp"], env=hub.env, cwd=str(REPO))


async def round_trips(hub: HubProcess, calls: int, recall: bool) -> dict[str, list[float]]:
    """Each tool's warm round trips over one stdio session."""
    searches = [{"query": q, "k": 5} for q in QUERIES]
    sources = [{"source": f"bot-{b:02d}"} for b in range(20)]
    async with Client(server(hub)) as client:
        timings = {"search_knowledge": await timed_calls(client, "search_knowledge", searches, calls)}
        if recall:
            drafts = [{"reasoning": q, "k": 5} for q in QUERIES]
            timings["recall_decisions"] = await timed_calls(client, "recall_decisions", drafts, calls)
        timings["agent_performance (all)"] = await timed_calls(client, "agent_performance", [{}], calls)
        timings["agent_performance (one agent)"] = await timed_calls(client, "agent_performance", sources, calls)
    return timings


async def start_ups(hub: HubProcess, starts: int) -> list[float]:
    """Seconds from spawning `python main.py mcp` to a completed initialize."""
    timings = []
    for _ in range(starts):
        began = time.perf_counter()
        async with Client(server(hub)):
            timings.append(time.perf_counter() - began)
    return timings


def prepare(home: Path, trades: int) -> HubProcess:
    """The daemon with the shipped knowledge indexed and TRADES paired."""
    shutil.copytree(REPO / "knowledge", home / "knowledge")
    hub = quiet_hub(home)
    asyncio.run(seed(hub, trades))
    files = sum(1 for _ in (REPO / "knowledge").rglob("*.md")) - 1  # knowledge/README.md is not indexed
    wait_until(lambda: sum(d["files"] for d in get(hub, "/api/knowledge")["domains"]) == files, 600)
    wait_until(lambda: get(hub, "/api/health")["embedder"]["detail"].get("ready"), 120)
    exits = trades // 2
    wait_until(lambda: sum(g["exits"] for g in get(hub, "/api/performance?group_by=")["groups"]) >= exits, 600)
    return hub


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--calls", type=int, default=300)
    cli.add_argument("--starts", type=int, default=10)
    cli.add_argument("--trades", type=int, default=10_000)
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        hub = prepare(Path(scratch), args.trades)
        try:
            busy, total = machine_busy()
            timings = asyncio.run(round_trips(hub, args.calls, recall_served(hub)))
            starts = asyncio.run(start_ups(hub, args.starts))
            busy, total = machine_busy()[0] - busy, machine_busy()[1] - total
        finally:
            hub.stop()
    print(f"warm round trips over stdio, {args.calls} calls each ({args.trades:,} trades stored):")
    for name, values in timings.items():
        print(f"  {name:<30} p50 {percentile(values, 50):6.2f} ms  p99 {percentile(values, 99):6.2f} ms"
              f"  max {max(values):6.2f} ms")
    if "recall_decisions" not in timings:
        print("  recall_decisions               not measured: the hub does not serve /api/trades/recall")
    print(f"start-up of `python main.py mcp` to initialize, {args.starts} runs: median "
          f"{percentile(starts, 50):.2f} s, max {max(starts):.2f} s ({', '.join(f'{s:.2f}' for s in starts)})")
    print(f"machine busy {100 * busy / total:.0f} % while measuring")


if __name__ == "__main__":
    main()
