"""GET /api/trades and /api/trades/{id}: filters, paging, errors; and the published schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from nats.aio.client import Client as Nats

from core.events import TradeExecuted
from handlers.http.keys import TRADE_WRITER
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import trade

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
async def stocked(nc: Nats, tmp_path: Path, nats_url: str, database_url: str) -> AsyncIterator[Hub]:
    """A hub (SQLite and PostgreSQL) holding 60 trades: 3 assets, 2 sources, one per hour."""
    hub = await start_hub(hub_settings(tmp_path, nats_url, database_url))
    events = [
        TradeExecuted.model_validate(trade(
            event_id=f"rest-{i}", timestamp=(START + timedelta(hours=i)).isoformat(),
            asset=["BTC", "ETH", "SOL"][i % 3], action="BUY" if i % 2 else "SELL",
            source=f"bot-{i % 2}", strategy="momentum" if i < 30 else "mean_reversion", price=100.0 + i,
        ))
        for i in range(60)
    ]
    await hub.app[TRADE_WRITER].insert(events)
    yield hub
    await hub.stop()


async def fetch(hub: Hub, query: str, status: int = 200) -> dict:  # type: ignore[type-arg]
    response = await hub.http.get(f"/api/trades{query}")
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()  # type: ignore[no-any-return]


def hours(page: dict) -> list[int]:  # type: ignore[type-arg]
    return [int(t["price"] - 100) for t in page["trades"]]


async def test_newest_first_with_default_limit(stocked: Hub) -> None:
    page = await fetch(stocked, "")
    assert hours(page) == list(range(59, -1, -1))
    assert page["next_cursor"] is None


@pytest.mark.parametrize(("query", "expected"), [
    ("?asset=ETH", [i for i in range(59, -1, -1) if i % 3 == 1]),
    ("?asset=eth&action=BUY", [i for i in range(59, -1, -1) if i % 3 == 1 and i % 2]),
    ("?source=bot-0&strategy=mean_reversion", [i for i in range(59, 29, -1) if i % 2 == 0]),
    ("?since=2024-01-02T00:00:00Z&until=2024-01-02T03:00:00Z", [26, 25, 24]),
    ("?since=2024-01-02T00:00:00", [i for i in range(59, 23, -1)]),  # naive means UTC
    ("?asset=DOGE", []),
    ("?after_id=0&asset=SOL&limit=3", [59, 56, 53]),
])
async def test_filters(stocked: Hub, query: str, expected: list[int]) -> None:
    assert hours(await fetch(stocked, query)) == expected


async def test_after_id_returns_what_was_stored_later(stocked: Hub) -> None:
    ids = [t["id"] for t in (await fetch(stocked, "?limit=500"))["trades"]]
    pivot = sorted(ids)[49]
    later = await fetch(stocked, f"?after_id={pivot}")
    assert sorted(t["id"] for t in later["trades"]) == sorted(ids)[50:]




async def test_cursor_pages_walk_everything_once(stocked: Hub) -> None:
    seen: list[int] = []
    query = "?asset=BTC&limit=7"
    while True:
        page = await fetch(stocked, query)
        seen += hours(page)
        if page["next_cursor"] is None:
            break
        query = f"?asset=BTC&limit=7&cursor={page['next_cursor']}"
    assert seen == [i for i in range(59, -1, -1) if i % 3 == 0]


async def test_offset_paging(stocked: Hub) -> None:
    page = await fetch(stocked, "?limit=5&offset=10")
    assert hours(page) == [49, 48, 47, 46, 45]
    assert hours(await fetch(stocked, "?offset=100")) == []


async def test_trade_by_id_and_unknown_ids(stocked: Hub) -> None:
    first = (await fetch(stocked, "?limit=1"))["trades"][0]
    assert await fetch(stocked, f"/{first['id']}") == first
    missing = await fetch(stocked, "/999999", status=404)
    assert missing["error"] == "not_found" and "999999" in missing["message"]
    await fetch(stocked, f"/{10**30}", status=404)  # beyond BIGINT: still a 404, not a 500
    assert (await fetch(stocked, "/abc", status=404))["error"] == "not_found"


@pytest.mark.parametrize(("query", "field"), [
    ("?limit=0", "limit"), ("?limit=-1", "limit"), ("?limit=501", "limit"), ("?limit=ten", "limit"),
    ("?offset=-5", "offset"), ("?offset=99999999999", "offset"), ("?since=garbage", "since"),
    ("?until=2024-13-45", "until"), ("?action=HOLD", "action"), ("?asset=B.TC", "asset"),
    ("?colour=red", "colour"),
])
async def test_bad_parameters_get_422_with_the_field(stocked: Hub, query: str, field: str) -> None:
    body = await fetch(stocked, query, status=422)
    assert body["error"] == "invalid_parameters"
    assert field in [d["field"] for d in body["details"]]


@pytest.mark.parametrize("query", ["?cursor=not-a-cursor", "?cursor=Zm9vfGJhcg", "?limit=5&offset=5&cursor=abc"])
async def test_bad_cursor_is_a_4xx(stocked: Hub, query: str) -> None:
    response = await stocked.http.get(f"/api/trades{query}")
    assert response.status in (400, 422)
    assert "error" in await response.json()


async def test_schemas_are_served_and_validate_what_the_hub_accepts(hub: Hub) -> None:
    schemas = await (await hub.http.get("/api/schemas")).json()
    assert "TradeExecuted" in schemas
    schema = await (await hub.http.get("/api/schemas/TradeExecuted")).json()
    assert schema == schemas["TradeExecuted"]
    jsonschema.validate(trade(), schema)
    for bad in (trade(price=-1), trade(confidence=101), trade(action="HOLD"), {"asset": "BTC"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    missing = await hub.http.get("/api/schemas/Nope")
    assert missing.status == 404 and "TradeExecuted" in (await missing.json())["message"]


async def test_unknown_route_and_method_are_json_errors(hub: Hub) -> None:
    response = await hub.http.get("/api/nothing-here")
    assert response.status == 404 and (await response.json())["error"] == "not_found"
    response = await hub.http.post("/api/trades", json={})
    assert response.status == 405 and (await response.json())["error"] == "method_not_allowed"
