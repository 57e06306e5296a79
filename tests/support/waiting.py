"""Polling until something is true: the hub acks, commits and indexes in its own time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as Nats


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = ""
) -> None:
    """Poll CHECK (plain or async) until it is true; fail with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> None:
    """Poll CHECK until it is truthy, blocking (for tests outside an event loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


async def all_acked(nc: Nats, stream: str, consumer: str) -> bool:
    """Whether CONSUMER has every message of STREAM delivered and acked.

    The hub's acks are fire-and-forget, so poll this with eventually().
    """
    info = await nc.jetstream().consumer_info(stream, consumer)
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


async def count_rows(hub: Any, model: type[Any]) -> int:
    """How many rows of MODEL the hub's database holds."""
    from sqlalchemy import func, select

    from handlers.http.keys import SESSIONS

    async with hub.app[SESSIONS]() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def rows_are(hub: Any, model: type[Any], expected: int) -> bool:
    """Whether the hub holds EXPECTED rows of MODEL (false while the database is unreachable)."""
    try:
        return await count_rows(hub, model) == expected
    except Exception:  # e.g. a connection a fault test has just killed
        return False


async def wait_until_indexed(hub: Any, files: int, timeout: float = 60) -> None:
    """Wait until the hub's knowledge overview counts FILES indexed files in all."""

    async def indexed() -> bool:
        body = await (await hub.http.get("/api/knowledge")).json()
        return bool(sum(d["files"] for d in body["domains"]) == files)

    await eventually(indexed, timeout=timeout, what=f"{files} knowledge files indexed")
