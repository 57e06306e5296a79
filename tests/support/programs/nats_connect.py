"""Connect to NATS_URL once, no retries, then leave: fails (exit 1) when the server refuses.

    python -m tests.support.programs.nats_connect NATS_URL
"""

from __future__ import annotations

import asyncio
import sys

import nats


async def connect(url: str) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=0, allow_reconnect=False)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(connect(sys.argv[1]))
