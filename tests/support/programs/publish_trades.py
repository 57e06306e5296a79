"""A bot that publishes N trades as fast as it can (or at --rate per second).

    python -m tests.support.programs.publish_trades NATS_URL N [--first F] [--rate R] [--prefix P]
                                                    [--assets BTC,ETH] [--stamp]

Publishes are acknowledged by the stream (JetStream publish_async, a window of pending acks):
core NATS publishes into a stream are fire-and-forget, and the server may shed them under load.
It exits once the stream has acknowledged every trade. The trades are PREFIX-F … PREFIX-(F+N-1),
each also the trade's Nats-Msg-Id, all of one bot and one strategy ("bench"). With --stamp each
carries its send time (ns) in its strategy field instead, for latency measurements: every trade
is then a (source, strategy, asset) group of its own for the hub's outcome pairing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import nats
import orjson
from nats.js.api import PubAck


async def publish(url: str, total: int, first: int, rate: float, prefix: str, assets: list[str],
                  stamp: bool) -> None:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream(publish_async_max_pending=4000)
    acks: list[asyncio.Future[PubAck]] = []
    interval = 1.0 / rate if rate else 0.0
    started = time.perf_counter()
    for n in range(total):
        if interval:
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        i = first + n
        asset = assets[i % len(assets)]
        event_id = f"{prefix}-{i}"
        body = {"event_id": event_id, "timestamp": "2024-05-01T12:00:00Z", "asset": asset,
                "action": "SELL" if i // len(assets) % 2 else "BUY", "price": 40000.0 + i % 1000, "quantity": 0.25,
                "reasoning": "RSI(14) crossed back above 30 with rising volume; trend filter positive",
                "confidence": i % 101, "source": "bench-bot",
                "strategy": str(time.time_ns()) if stamp else "bench"}
        acks.append(await js.publish_async(f"trades.{asset}", orjson.dumps(body),
                                           headers={"Nats-Msg-Id": event_id}))
        if len(acks) >= 8000:
            await _confirm(acks)
    await _confirm(acks)
    await nc.close()


async def _confirm(acks: list[asyncio.Future[PubAck]]) -> None:
    await asyncio.gather(*acks)  # raises if the stream did not store one
    acks.clear()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("url")
    cli.add_argument("total", type=int)
    cli.add_argument("--first", type=int, default=0)
    cli.add_argument("--rate", type=float, default=0.0)
    cli.add_argument("--prefix", default="bench")
    cli.add_argument("--assets", default="BTC,ETH,SOL,ADA")
    cli.add_argument("--stamp", action="store_true", help="the send time (ns) as each trade's strategy")
    args = cli.parse_args()
    asyncio.run(publish(args.url, args.total, args.first, args.rate, args.prefix, args.assets.split(","),
                        args.stamp))


if __name__ == "__main__":
    main()
