"""CORS is off by default; HUB_CORS_ORIGINS opens the API to those origins and guards /ws."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nats.aio.client import Client as Nats

from tests.support.hub_app import Hub, hub_settings, start_hub

DASHBOARD = "https://dash.example.com"


@pytest.fixture
async def cors_hub(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, cors_origins=[DASHBOARD]))
    yield hub
    await hub.stop()


async def test_listed_origin_may_call_the_api(cors_hub: Hub) -> None:
    preflight = await cors_hub.http.options("/api/trades", headers={
        "Origin": DASHBOARD, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "AUTHORIZATION" in preflight.headers["Access-Control-Allow-Headers"].upper()
    answer = await cors_hub.http.get("/api/trades", headers={"Origin": DASHBOARD})
    assert answer.headers["Access-Control-Allow-Origin"] == DASHBOARD


async def test_other_origins_get_no_cors_headers_and_no_websocket(cors_hub: Hub) -> None:
    answer = await cors_hub.http.get("/api/trades", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await cors_hub.http.ws_connect("/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    for headers in ({"Origin": DASHBOARD}, {}):  # the listed origin, and non-browser clients
        ws = await cors_hub.http.ws_connect("/ws", headers=headers)
        await ws.close()


async def test_cors_is_off_by_default(hub: Hub) -> None:
    answer = await hub.http.get("/api/trades", headers={"Origin": DASHBOARD})
    assert "Access-Control-Allow-Origin" not in answer.headers
    ws = await hub.http.ws_connect("/ws", headers={"Origin": "https://anywhere.example"})
    await ws.close()
