"""A WebSocket client of one hub: collects the event_id -> database id of every trade announced.

    python -m tests.support.programs.ws_collector WS_URL TOTAL OUT

It prints "connected" once connected, and stops when it has seen TOTAL distinct trades, when its
hub goes away, or on SIGTERM; then it writes what it saw to OUT (JSON: seen, received, frames,
and why it ended).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import orjson


async def collect(url: str, total: int, out: str) -> None:
    seen: dict[str, int] = {}
    received = frames = 0
    end = "sigterm"
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            print("connected", flush=True)

            async def read() -> str:
                nonlocal received, frames
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    body = orjson.loads(message.data)
                    frames += 1
                    for event in body.get("events", ()):
                        if event["kind"] == "trades":
                            received += 1
                            seen[event["data"]["event_id"]] = event["data"]["id"]
                    if len(seen) >= total:
                        return "complete"
                return f"closed {ws.close_code}"

            reader = asyncio.create_task(read())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                end = reader.result()
            reader.cancel()
            stopper.cancel()
    with open(out, "wb") as f:
        f.write(orjson.dumps({"seen": seen, "received": received, "frames": frames, "end": end}))


if __name__ == "__main__":
    asyncio.run(collect(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
