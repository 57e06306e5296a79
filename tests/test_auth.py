"""HUB_API_TOKEN: the API and the WebSocket need it; health and the page do not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nats.aio.client import Client as Nats

from tests.support.hub_app import Hub, hub_settings, start_hub

TOKEN = "s3cret-token"


@pytest.fixture
async def locked(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, api_token=TOKEN))
    yield hub
    await hub.stop()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": "Bearer "}])
async def test_api_without_the_token_is_401(locked: Hub, headers: dict[str, str]) -> None:
    for path in ("/api/trades", "/api/backtests", "/api/schemas", "/api/knowledge", "/api/nothing"):
        response = await locked.http.get(path, headers=headers)
        assert response.status == 401, path
        assert (await response.json())["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_api_with_the_token_answers(locked: Hub) -> None:
    response = await locked.http.get("/api/trades", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and (await response.json())["trades"] == []


async def test_health_and_the_page_stay_open(locked: Hub) -> None:
    assert (await locked.http.get("/api/health")).status == 200
    assert (await locked.http.get("/")).status == 200
    assert (await locked.http.get("/static/app.js")).status == 200


async def test_websocket_needs_the_token_in_the_query(locked: Hub) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await locked.http.ws_connect("/ws")
    assert refused.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await locked.http.ws_connect("/ws?token=nope")
    ws = await locked.http.ws_connect(f"/ws?token={TOKEN}")
    await ws.send_json({"subscribe": {}})
    assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
    await ws.close()


async def test_without_a_token_setting_everything_is_open(hub: Hub) -> None:
    assert (await hub.http.get("/api/trades")).status == 200
