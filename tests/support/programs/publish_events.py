"""Publish the payloads of a JSON array read from stdin on SUBJECT, each through JetStream.

    python -m tests.support.programs.publish_events NATS_URL SUBJECT < payloads.json

Each publish waits for the stream's ack; the payloads are sent as they are (re-encoded JSON),
valid or not.
"""

from __future__ import annotations

import asyncio
import sys

import nats
import orjson


async def publish(url: str, subject: str, payloads: list[object]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for payload in payloads:
        await js.publish(subject, orjson.dumps(payload))
    await nc.close()


if __name__ == "__main__":
    asyncio.run(publish(sys.argv[1], sys.argv[2], orjson.loads(sys.stdin.buffer.read())))
