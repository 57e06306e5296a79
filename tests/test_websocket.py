"""The WebSocket fan-out: subscriptions narrow the stream; a slow client is cut off alone."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from nats.aio.client import Client as Nats

from handlers.http.keys import WS_HUB
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import publish_trade
from tests.support.waiting import eventually


async def receive_events(ws: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        frame = await ws.receive_json(timeout=timeout)
        assert frame["type"] == "events", frame
        events.extend(frame["events"])
    return events


async def test_subscribe_narrows_by_kind_and_asset(hub: Hub, nc: Nats) -> None:
    narrow = await hub.http.ws_connect("/ws")
    everything = await hub.http.ws_connect("/ws")
    await narrow.send_json({"subscribe": {"kinds": ["trades"], "assets": ["eth"]}})
    assert await narrow.receive_json(timeout=5) == {"type": "subscribed", "kinds": ["trades"], "assets": ["ETH"]}

    await publish_trade(nc, asset="BTC")
    await publish_trade(nc, asset="ETH")
    await publish_trade(nc, asset="BTC")
    await publish_trade(nc, asset="ETH", price=3100.0)

    got_all = await receive_events(everything, 4)
    assert [e["data"]["asset"] for e in got_all] == ["BTC", "ETH", "BTC", "ETH"]
    got_eth = await receive_events(narrow, 2)
    assert [(e["data"]["asset"], e["data"]["price"]) for e in got_eth] == [("ETH", 45000.0), ("ETH", 3100.0)]
    await narrow.close()
    await everything.close()


async def test_bad_subscribe_gets_an_error_and_keeps_the_connection(hub: Hub, nc: Nats) -> None:
    ws = await hub.http.ws_connect("/ws")
    await ws.send_str("not json")
    assert (await ws.receive_json(timeout=5))["error"] == "invalid_command"
    await ws.send_json({"subscribe": {"kinds": ["weather"]}})
    reply = await ws.receive_json(timeout=5)
    assert reply["error"] == "invalid_subscribe" and "kinds.0" in reply["message"]
    await publish_trade(nc)
    assert len(await receive_events(ws, 1)) == 1
    await ws.close()


async def _open_non_reading_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw WebSocket client with a tiny receive buffer that never reads a frame."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b"101" in await reader.readline()
    return reader, writer


async def test_slow_client_is_cut_off_while_fast_one_keeps_receiving(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, ws_queue_size=20))
    try:
        fast = await hub.http.ws_connect("/ws", max_msg_size=0)
        _, slow_writer = await _open_non_reading_client(hub.http.port)  # type: ignore[arg-type]
        ws_hub = hub.app[WS_HUB]
        await eventually(lambda: len(ws_hub.clients) == 2, what="both clients connected")

        total = 600
        receiving = asyncio.create_task(receive_events(fast, total, timeout=20))
        for i in range(total):
            await publish_trade(nc, price=1000.0 + i, reasoning="r" * 15_000)
        events = await receiving

        assert [e["data"]["price"] for e in events] == [1000.0 + i for i in range(total)]
        assert ws_hub.dropped_slow == 1
        assert len(ws_hub.clients) == 1
        health = await (await hub.http.get("/api/health")).json()
        assert health["websocket"] == {"clients": 1, "connected_total": 2, "dropped_slow": 1}
        slow_writer.close()
        await fast.close()
    finally:
        await hub.stop()

