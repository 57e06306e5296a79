"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from nats.aio.client import Client as Nats

_ids = itertools.count()


def trade(**overrides: Any) -> dict[str, Any]:
    """A valid TradeExecuted payload, with OVERRIDES."""
    fields: dict[str, Any] = {
        "event_id": f"t-{time.monotonic_ns()}-{next(_ids)}",
        "timestamp": "2024-05-01T12:00:00Z",
        "asset": "BTC",
        "action": "BUY",
        "price": 45000.0,
        "quantity": 0.1,
        "reasoning": "RSI(14) at 27: oversold",
        "confidence": 85,
        "source": "test-bot",
        "strategy": "rsi_reversion",
    }
    fields.update(overrides)
    return fields


async def publish_raw(nc: Nats, subject: str, payload: bytes | dict[str, Any], msg_id: str | None = None) -> None:
    """Publish PAYLOAD (a dict is JSON-encoded) through JetStream, waiting for the stream's ack."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await nc.jetstream().publish(subject, data, headers=headers)


async def publish_trade(nc: Nats, **overrides: Any) -> dict[str, Any]:
    """Publish a valid trade on trades.<asset>; returns its payload."""
    payload = trade(**overrides)
    await publish_raw(nc, f"trades.{payload['asset']}", payload)
    return payload


async def all_acked(nc: Nats, stream: str, consumer: str) -> bool:
    """Whether CONSUMER has every message of STREAM delivered and acked.

    The hub's acks are fire-and-forget, so poll this with eventually().
    """
    info = await nc.jetstream().consumer_info(stream, consumer)
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


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


async def count_rows(hub: Any, model: type[Any]) -> int:
    """How many rows of MODEL the hub's database holds."""
    from sqlalchemy import func, select

    from handlers.keys import SESSIONS

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
