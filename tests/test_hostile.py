"""Hostile input: every payload of the corpus is dead-lettered with a reason or stored exactly."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as Nats

from handlers.http.keys import CONSUMERS
from tests.support.hub_app import Hub
from tests.support.payloads import publish_raw
from tests.support.waiting import eventually

CORPUS = json.loads((Path(__file__).parent / "data" / "hostile_trades.json").read_text())["items"]


def payload(item: dict[str, Any], event_id: str) -> bytes:
    if "json" in item:
        body = dict(item["json"])
        if body.get("event_id") == "X":
            body["event_id"] = event_id
        return orjson.dumps(body)
    if "base64" in item:
        return base64.b64decode(item["base64"])
    if item.get("generate") == "deep":
        return b'{"event_id": "deep", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if item.get("generate") == "huge_reasoning":
        return orjson.dumps({"event_id": event_id, "asset": "BTC", "action": "BUY", "price": 1.0,
                             "quantity": 1.0, "confidence": 1, "reasoning": "x" * 10_000_000})
    return str(item["text"]).replace('"X"', f'"{event_id}"').encode("utf-8", "surrogatepass")


async def test_every_hostile_payload_is_dead_lettered_or_stored_exactly(hub: Hub, nc: Nats) -> None:
    dead = await nc.subscribe("hub.dlq.>")
    expected_dead, stored = [], {}
    for number, item in enumerate(CORPUS):
        event_id = f"hostile-{number}"
        data = payload(item, event_id)
        await publish_raw(nc, "trades.BTC", data)
        if item["expect"] == "dlq":
            expected_dead.append((item, data))
        else:
            stored[event_id] = orjson.loads(data)

    for item, sent in expected_dead:  # dead letters come back in publish order
        record = orjson.loads((await dead.next_msg(timeout=10)).data)
        assert item["reason"] in record["reason"], (item["name"], record["reason"])
        kept = (base64.b64decode(record["payload"]) if record["encoding"] == "base64"
                else record["payload"].encode("utf-8", "surrogatepass"))
        assert kept == sent, item["name"]  # the DLQ keeps the original, untouched

    stats = hub.app[CONSUMERS][0].stats
    await eventually(lambda: stats.persisted == len(stored), what="the benign ones stored")
    page = await (await hub.http.get("/api/trades?limit=500")).json()
    by_id = {t["event_id"]: t for t in page["trades"]}
    for event_id, sent in stored.items():
        assert by_id[event_id]["reasoning"] == sent["reasoning"]  # byte-for-byte
        assert by_id[event_id]["strategy"] == sent.get("strategy")
    assert (await hub.http.get("/api/health")).status == 200  # still serving
    assert stats.dead_lettered == len(expected_dead)


@pytest.mark.parametrize("query", [
    "limit=-1", "limit=0", "limit=99999999999999999999", "offset=-1", "offset=1e9", "since=garbage",
    "until=%00", "asset=%27%20OR%201%3D1", "cursor=%ff%fe", "cursor=" + "A" * 5000, "action=buy%00",
    "since=2024-01-01T00:00:00Z&since=bad", "strategy=" + "s" * 1000,
])
async def test_hostile_query_strings_get_4xx_json(hub: Hub, query: str) -> None:
    response = await hub.http.get(f"/api/trades?{query}")
    assert 400 <= response.status < 500, (query, response.status)
    assert "error" in await response.json()

