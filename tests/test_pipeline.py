"""The trade pipeline end to end: NATS in, rows, REST, WebSocket frames, dead letters."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as Nats
from sqlalchemy import func, select

from handlers.http.keys import CONSUMERS, OUTCOMES, SESSIONS
from storage.sql.models import Trade
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import publish_raw, publish_trade, trade
from tests.support.waiting import all_acked, count_rows, eventually, rows_are


async def next_events(ws: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    frame = await ws.receive_json(timeout=timeout)
    assert frame["type"] == "events", frame
    return list(frame["events"])


async def test_trade_flows_to_row_rest_and_websocket(
    nc: Nats, tmp_path: Path, nats_url: str, database_url: str
) -> None:
    hub = await start_hub(hub_settings(tmp_path, nats_url, database_url))
    try:
        ws = await hub.http.ws_connect("/ws")
        sent = await publish_trade(nc, reasoning="MACD crossed up; <b>volume</b> confirms", confidence=72.5)

        [event] = await next_events(ws)
        assert event["kind"] == "trades" and event["subject"] == "hub.persisted.trades.BTC"
        stored = event["data"]
        assert stored["event_id"] == sent["event_id"] and isinstance(stored["id"], int)

        response = await hub.http.get(f"/api/trades/{stored['id']}")
        assert response.status == 200
        body = await response.json()
        assert body == stored
        assert body["timestamp"] == "2024-05-01T12:00:00Z"
        assert body["reasoning"] == sent["reasoning"] and body["confidence"] == 72.5
        assert (body["asset"], body["action"], body["price"], body["quantity"]) == ("BTC", "BUY", 45000.0, 0.1)
        listing = await (await hub.http.get("/api/trades")).json()
        assert [t["id"] for t in listing["trades"]] == [stored["id"]]
        await ws.close()
    finally:
        await hub.stop()


async def test_same_event_twice_makes_one_row(hub: Hub, nc: Nats) -> None:
    payload = trade()
    # Once with the Nats-Msg-Id (the stream drops the copy), once without (the database does).
    await publish_raw(nc, "trades.BTC", payload, msg_id=payload["event_id"])
    await publish_raw(nc, "trades.BTC", payload, msg_id=payload["event_id"])
    await publish_raw(nc, "trades.BTC", payload)
    stats = hub.app[CONSUMERS][0].stats
    await eventually(lambda: stats.consumed == 2, what="both stream copies consumed")
    await eventually(lambda: stats.duplicates == 1 and stats.persisted == 1)
    assert await count_rows(hub, Trade) == 1



BAD_EVENTS = [
    pytest.param(b"{not json", "not JSON", id="not-json"),
    pytest.param(b'["a", "list"]', "expected a JSON object", id="not-an-object"),
    pytest.param(trade(price="45000"), "price: Input should be a valid number", id="wrong-type"),
    pytest.param(trade(price=0), "price: Input should be greater than 0", id="zero-price"),
    pytest.param(trade(quantity=-1), "quantity: Input should be greater than 0", id="negative-quantity"),
    pytest.param(b'{"event_id":"x","asset":"BTC","action":"BUY","price":NaN,"quantity":1,"confidence":5}',
                 "not JSON", id="nan"),
    pytest.param(trade(price=1e300), "price: Input should be less than", id="huge-price"),
    pytest.param(trade(confidence=101), "confidence: Input should be less than or equal to 100", id="confidence-high"),
    pytest.param(trade(confidence=-0.5), "confidence: Input should be greater than or equal to 0", id="confidence-low"),
    pytest.param(trade(action="HOLD"), "action: Input should be 'BUY' or 'SELL'", id="unknown-action"),
    pytest.param(trade(asset=""), "asset: String should have at least 1 character", id="empty-asset"),
    pytest.param(trade(reasoning="x" * 20_001), "reasoning: String should have at most 20000 characters", id="oversize-field"),
    pytest.param(trade(reasoning="x" * 70_000), "payload is", id="oversize-payload"),
    pytest.param(trade(reasoning="a\x00b"), "reasoning: Value error, text must not contain NUL", id="nul"),
    pytest.param(trade(event_id=None), "event_id: Input should be a valid string", id="missing-id"),
    pytest.param(trade(asset="ETH"), "does not match subject", id="subject-mismatch"),
    pytest.param(b"\xff\xfe{}", "not JSON", id="invalid-utf8"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_EVENTS)
async def test_bad_event_goes_to_dead_letter_with_reason(hub: Hub, nc: Nats, payload: Any, reason: str) -> None:
    dead = await nc.subscribe("hub.dlq.>")
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    await publish_raw(nc, "trades.BTC", data)

    msg = await dead.next_msg(timeout=5)
    record = orjson.loads(msg.data)
    assert msg.subject == "hub.dlq.trades.BTC"
    assert reason in record["reason"], record["reason"]
    assert record["subject"] == "trades.BTC"
    original = record["payload"].encode() if record["encoding"] == "utf-8" else base64.b64decode(record["payload"])
    assert original == data
    stats = hub.app[CONSUMERS][0].stats
    await eventually(lambda: stats.dead_lettered == 1)
    assert await count_rows(hub, Trade) == 0
    js = nc.jetstream()
    await eventually(lambda: all_acked(nc, hub.settings.stream_name, "trades"), timeout=5,
                     what="the dead-lettered event to be acked")
    info = await js.consumer_info(hub.settings.stream_name, "trades")
    assert info.num_redelivered == 0  # acked once, never redelivered
    dlq = await js.stream_info(f"{hub.settings.stream_name}_DLQ")
    assert dlq.state.messages == 1  # kept, not just announced


async def test_one_bad_event_does_not_hold_back_the_good(hub: Hub, nc: Nats) -> None:
    good = [trade(asset="ETH", price=3000 + i) for i in range(20)]
    for i, payload in enumerate(good):
        await publish_raw(nc, "trades.ETH", payload)
        if i == 10:
            await publish_raw(nc, "trades.ETH", trade(asset="ETH", confidence=900))
    await eventually(lambda: rows_are(hub, Trade, 20), what="20 good trades stored")
    assert hub.app[CONSUMERS][0].stats.dead_lettered == 1


async def test_hub_stopped_mid_stream_and_restarted_loses_and_doubles_nothing(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    # ack_wait far above the wait below: anything the first hub held and did not hand back
    # (nak) would only return after ack_wait, and the test would fail.
    settings = hub_settings(tmp_path, nats_url, sqlite_url, batch_size=50, ack_wait_seconds=120)
    total = 3000
    first = await start_hub(settings)

    async def stream() -> None:
        for i in range(total):
            await publish_trade(nc, event_id=f"restart-{i}", price=100 + i)

    publishing = asyncio.create_task(stream())
    await eventually(lambda: _at_least(first, 300), what="some trades stored before the stop")
    await first.stop()  # mid-stream: the rest stays in the stream, unacked
    stored_at_stop = await _count_in(sqlite_url)
    assert 0 < stored_at_stop < total

    second = await start_hub(settings)
    await publishing
    await eventually(lambda: rows_are(second, Trade, total), timeout=30, what="every trade stored")
    async with second.app[SESSIONS]() as session:
        distinct = await session.scalar(select(func.count(func.distinct(Trade.event_id))))
    assert distinct == total
    await second.stop()


async def _at_least(hub: Hub, n: int) -> bool:
    return await count_rows(hub, Trade) >= n


async def _count_in(url: str) -> int:
    from storage.sql.engine import create_hub_engine

    engine = create_hub_engine(url)
    async with engine.connect() as connection:
        value = await connection.scalar(select(func.count()).select_from(Trade))
    await engine.dispose()
    return int(value or 0)


async def test_two_instances_share_the_work_and_both_stream_everything(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    hubs = [await start_hub(hub_settings(tmp_path / name, nats_url, sqlite_url, batch_size=20))
            for name in ("a", "b")]
    try:
        sockets = [await hub.http.ws_connect("/ws", max_msg_size=0) for hub in hubs]
        total = 1000
        for i in range(total):
            await publish_trade(nc, event_id=f"shared-{i}", price=1.0 + i)
        await eventually(lambda: rows_are(hubs[0], Trade, total), timeout=30, what="every trade stored")
        shares = [hub.app[CONSUMERS][0].stats.persisted for hub in hubs]
        assert sum(shares) == total and all(shares), shares  # each event persisted by one instance
        for ws in sockets:
            seen: set[float] = set()
            while len(seen) < total:
                seen.update(e["data"]["price"] for e in await next_events(ws))
            assert seen == {1.0 + i for i in range(total)}
    finally:
        for hub in hubs:
            await hub.stop()


async def test_event_id_reused_with_different_content_is_dead_lettered(hub: Hub, nc: Nats) -> None:
    dead = await nc.subscribe("hub.dlq.>")
    first = trade(event_id="reused-1", price=100.0, reasoning="first")
    await publish_raw(nc, "trades.BTC", first)
    await eventually(lambda: rows_are(hub, Trade, 1))
    await publish_raw(nc, "trades.BTC", first)  # an honest replay: a duplicate, nothing more
    await publish_raw(nc, "trades.BTC", trade(event_id="reused-1", price=101.0, reasoning="second"))
    record = orjson.loads((await dead.next_msg(timeout=10)).data)
    assert "already stored with a different price, reasoning" in record["reason"]
    assert orjson.loads(record["payload"])["price"] == 101.0  # the second trade is kept, in the DLQ
    stats = hub.app[CONSUMERS][0].stats
    await eventually(lambda: stats.duplicates == 1 and stats.dead_lettered == 1)
    assert await count_rows(hub, Trade) == 1


async def test_reuse_within_one_batch_is_caught_too(hub: Hub, nc: Nats) -> None:
    dead = await nc.subscribe("hub.dlq.>")
    # Published back to back, they usually arrive in one batch: the first wins, the second is refused.
    await publish_raw(nc, "trades.ETH", trade(event_id="same-batch", asset="ETH", quantity=1.0))
    await publish_raw(nc, "trades.ETH", trade(event_id="same-batch", asset="ETH", quantity=2.0))
    record = orjson.loads((await dead.next_msg(timeout=10)).data)
    assert "different quantity" in record["reason"]
    assert await count_rows(hub, Trade) == 1


async def test_a_trade_without_timestamp_takes_the_stream_time_so_replays_match(hub: Hub, nc: Nats) -> None:
    from datetime import datetime, timezone

    untimed = {k: v for k, v in trade(event_id="untimed").items() if k != "timestamp"}
    before = datetime.now(timezone.utc)
    await publish_raw(nc, "trades.BTC", untimed)
    await asyncio.sleep(0.3)
    await publish_raw(nc, "trades.BTC", untimed)  # a replay: stored later, the stream time differs
    stats = hub.app[CONSUMERS][0].stats
    # consumed counts a batch on arrival, persisted and duplicates once it is acked
    await eventually(lambda: stats.consumed == 2 and stats.persisted + stats.duplicates == 2)
    assert stats.persisted == 1 and stats.duplicates == 1 and stats.dead_lettered == 0  # not an id reused with other content
    [stored] = (await (await hub.http.get("/api/trades")).json())["trades"]
    stamp = datetime.fromisoformat(stored["timestamp"].replace("Z", "+00:00"))
    assert before <= stamp <= datetime.now(timezone.utc)  # the stream's time of the first copy


async def test_the_background_workers_stand_aside_while_ingest_catches_up(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, batch_size=100))
    worker, js = hub.app[OUTCOMES], nc.jetstream()
    told: list[bool] = []  # what the worker is told after each commit: is ingest behind?
    wake = worker.wake
    worker.wake = lambda behind: (told.append(behind), wake(behind))
    try:
        await js.pause_consumer(hub.settings.stream_name, "trades", "2100-01-01T00:00:00Z")
        for n in range(500):  # a backlog of five batches
            await publish_trade(nc, event_id=f"backlog-{n}")
        await js.resume_consumer(hub.settings.stream_name, "trades")
        await eventually(lambda: rows_are(hub, Trade, 500), timeout=30)
        # Behind while a batch or more waited beyond the one committed; caught up at the end.
        assert told[0] and not told[-1], told
        [trades] = [c for c in hub.app[CONSUMERS] if c.route.name == "trades"]
        assert trades.stats.backlog == 0 and not trades.behind()
    finally:
        await hub.stop()
