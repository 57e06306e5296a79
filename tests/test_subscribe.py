"""The typed subscriber API for user code: live persisted events and JetStream replay."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from nats.aio.client import Client as Nats

from bus.publish import HubPublisher
from bus.subscribe import events
from core.api import TradeOut
from core.events import TradeExecuted
from tests.support.hub_app import Hub


async def collect(iterator: object, count: int) -> list[object]:
    got = []
    async for event in iterator:  # type: ignore[attr-defined]
        got.append(event)
        if len(got) == count:
            break
    return got


async def test_persisted_trades_arrive_as_models_with_their_ids(hub: Hub, nc: Nats) -> None:
    listening = asyncio.create_task(collect(events(nc, "hub.persisted.trades.>"), 2))
    await asyncio.sleep(0.1)  # core NATS: only what is published after subscribing
    publisher = HubPublisher(nc)
    sent = [await publisher.publish_trade(asset=a, action="BUY", price=10.0, quantity=1.0, confidence=60)
            for a in ("BTC", "ETH")]
    got = await asyncio.wait_for(listening, 10)
    assert all(isinstance(e, TradeOut) for e in got)
    assert [e.event_id for e in got] == [s.event_id for s in sent]  # type: ignore[attr-defined]
    assert all(e.id > 0 for e in got)  # type: ignore[attr-defined]


async def test_replay_from_a_sequence_or_a_time(hub: Hub, nc: Nats) -> None:
    publisher = HubPublisher(nc)
    before = datetime.now(timezone.utc)
    sent = [await publisher.publish_trade(asset="SOL", action="SELL", price=150.0 + i, quantity=2.0,
                                          confidence=40) for i in range(3)]
    from_start = await asyncio.wait_for(collect(events(nc, "trades.SOL", deliver_from=1), 3), 10)
    assert [e.event_id for e in from_start] == [s.event_id for s in sent]  # type: ignore[attr-defined]
    assert all(isinstance(e, TradeExecuted) for e in from_start)
    from_time = await asyncio.wait_for(collect(events(nc, "trades.SOL", deliver_from=before), 3), 10)
    assert [e.price for e in from_time] == [150.0, 151.0, 152.0]  # type: ignore[attr-defined]
