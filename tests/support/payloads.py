"""Valid event payloads, and publishing them through JetStream as a bot does."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from sqlalchemy import insert

from storage.sql.models import Trade

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


async def insert_trade_rows(sessions: Any, ids: Iterable[int], **overrides: Any) -> None:
    """Trades written straight into the table with these ids (a hole in the ids, filled late,
    is what the background workers' sweeps are for), one minute apart, with OVERRIDES."""
    rows = [{"id": i, "event_id": f"row-{i}", "timestamp": datetime(2024, 5, 1, 12, i, tzinfo=timezone.utc),
             "asset": "BTC", "action": "BUY", "price": 100.0, "quantity": 1.0, "reasoning": "",
             "confidence": 50.0, "source": "s", "strategy": "x", "fee": 0.0} for i in ids]
    async with sessions() as session, session.begin():
        await session.execute(insert(Trade), [{**row, **{k: v(row["id"]) if callable(v) else v
                                                         for k, v in overrides.items()}} for row in rows])
