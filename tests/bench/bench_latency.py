"""Latency publish -> WebSocket frame, at a steady rate with many connected clients.

    python tests/bench/bench_latency.py [--rate 1000] [--trades 15000] [--clients 100] [--measuring 5]

The daemon runs as `python main.py` (embedded nats-server); the publisher is its own process
and stamps each trade with its send time. All clients are real WebSocket connections the hub
must serve. MEASURING of them parse every frame and record latency. The rest only drain their
sockets, so that this process does not spend a core parsing 100 copies of every frame, which
would distort the figures. The first 10% of events are a warm-up and are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from tests.bench.common import open_drain, percentile, quiet_hub
from tests.support.processes import REPO, program


async def measure(ws: aiohttp.ClientWebSocketResponse, total: int, latencies: list[float]) -> None:
    seen = 0
    while seen < total:
        frame = await ws.receive()
        now = time.time_ns()
        for event in orjson.loads(frame.data)["events"]:
            latencies.append((now - int(event["data"]["strategy"])) / 1e6)
            seen += 1


async def run(http_url: str, nats_url: str, args: argparse.Namespace) -> list[float]:
    host, port = http_url.removeprefix("http://").split(":")
    drains = [await open_drain(host, int(port)) for _ in range(args.clients - args.measuring)]
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"{http_url}/ws") for _ in range(args.measuring)]
        await asyncio.sleep(0.5)
        publisher = await asyncio.create_subprocess_exec(
            *program("publish_trades", nats_url, str(args.trades), "--rate", str(args.rate), "--stamp"), cwd=REPO)
        await asyncio.wait_for(asyncio.gather(*(measure(ws, args.trades, latencies) for ws in sockets)),
                               args.trades / args.rate + 60)
        await publisher.wait()
        for ws in sockets:
            await ws.close()
    lost = [d for d in drains if d.received < args.trades * 100]
    for drain in drains:
        assert drain.transport is not None
        drain.transport.close()
    if lost:
        print(f"warning: {len(lost)} draining clients received less than expected")
    return latencies


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--rate", type=float, default=1000)
    cli.add_argument("--trades", type=int, default=15000)
    cli.add_argument("--clients", type=int, default=100)
    cli.add_argument("--measuring", type=int, default=5)
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        hub = quiet_hub(Path(scratch))
        try:
            import uvloop
            latencies = uvloop.run(run(hub.http_url, hub.nats_url, args))
        finally:
            hub.stop()
    counted = latencies[len(latencies) // 10:]
    print(f"{args.trades} trades at {args.rate:.0f}/s, {args.clients} WebSocket clients "
          f"({args.measuring} measuring), {len(counted)} latencies after warm-up:")
    print("  p50 {:.2f} ms  p90 {:.2f} ms  p99 {:.2f} ms  max {:.2f} ms".format(
        *(percentile(counted, q) for q in (50, 90, 99)), max(counted)))


if __name__ == "__main__":
    main()
