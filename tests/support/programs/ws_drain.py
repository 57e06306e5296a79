"""Reading-only WebSocket clients, one per hub port given: they read everything, parse nothing.

    python -m tests.support.programs.ws_drain PORT [PORT ...]

Prints "connected" once every client is connected; on SIGTERM prints the bytes each received
(a JSON list) and exits. The clients answer the hub's heartbeat pings (tests/bench/common.Drain).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson

from tests.bench.common import open_drain


async def drain(ports: list[int]) -> None:
    drains = [await open_drain("127.0.0.1", port) for port in ports]
    print("connected", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(orjson.dumps([d.received for d in drains]).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(drain([int(port) for port in sys.argv[1:]]))
