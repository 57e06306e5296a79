"""The WebSocket hub: every persisted event heard on NATS, fanned out to this instance's clients.

Each client has a bounded queue and its own writer task, so a client that stops reading only
fills its own queue; when that overflows the client is cut off, and nobody else waits for it.
A writer sends whatever has queued up as one frame, so a busy stream costs one frame per
client per burst rather than one per event.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from bus.codec import describe
from bus.replies import Listener
from core.api import WsSubscribe
from handlers.http.cors import origin_allowed

log = logging.getLogger(__name__)

MAX_EVENTS_PER_FRAME = 500
DEFAULT_KINDS = ("trades", "backtests", "knowledge")  # outcomes only when asked for
SEND_BUFFER_BYTES = 256 * 1024


@dataclass(eq=False)
class WsClient:
    """One connected dashboard: its socket, its queue of event JSON, and what it wants."""

    ws: web.WebSocketResponse
    queue: asyncio.Queue[str]
    transport: asyncio.BaseTransport | None = None
    filter: WsSubscribe = field(default_factory=WsSubscribe)

    def wants(self, kind: str, asset: str | None) -> bool:
        """Whether this client subscribed to events of KIND (and ASSET, when there is one)."""
        kinds, assets = self.filter.kinds, self.filter.assets
        if kind not in (kinds if kinds is not None else DEFAULT_KINDS):
            return False
        return assets is None or asset is None or asset in assets


@dataclass
class WsHub:
    """Fans persisted events (hub.persisted.>) out to the WebSocket clients of this instance."""

    nc: Nats
    queue_size: int = 1000
    allowed_origins: list[str] = field(default_factory=list)  # empty: no Origin check
    clients: set[WsClient] = field(default_factory=set)
    connected_total: int = 0
    dropped_slow: int = 0
    _listener: Listener | None = None
    _sub: Subscription | None = None
    _listening: asyncio.Lock = field(default_factory=asyncio.Lock)

    def attach(self, listener: Listener) -> None:
        """Take the routing table's fan-out row: its subscription is opened while clients are."""
        self._listener = listener

    async def _listen(self) -> None:
        # Only while someone is connected: parsing every persisted event for nobody would
        # cost the ingest path a sixth of its time.
        async with self._listening:
            if self._sub is None and self.clients and self._listener is not None:
                self._sub = await self.nc.subscribe(
                    self._listener.subject, cb=self._listener.callback,
                    pending_msgs_limit=0, pending_bytes_limit=0,
                )

    async def _unlisten(self) -> None:
        async with self._listening:
            if self._sub is not None and not self.clients:
                await self._sub.unsubscribe()
                self._sub = None

    async def stop(self) -> None:
        """Stop listening, whoever is still connected."""
        self.clients.clear()
        await self._unlisten()

    async def close_all(self) -> None:
        """Close every client (hub shutting down)."""
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"hub stopping") for c in self.clients),
            return_exceptions=True,
        )

    async def fan_out(self, msg: Msg) -> None:
        """Queue a persisted event for every client that wants it."""
        if not self.clients:
            return
        tokens = msg.subject.split(".")  # hub.persisted.<kind>[.<asset>]
        kind = tokens[2] if len(tokens) > 2 else ""
        asset = tokens[3] if len(tokens) > 3 else None
        item = f'{{"kind":"{kind}","subject":"{msg.subject}","data":{msg.data.decode()}}}'
        for client in list(self.clients):
            if client.wants(kind, asset):
                try:
                    client.queue.put_nowait(item)
                except asyncio.QueueFull:
                    self._cut_off(client)

    def _cut_off(self, client: WsClient) -> None:
        self.clients.discard(client)
        self.dropped_slow += 1
        log.warning("websocket client too slow (queue of %d full); disconnecting", self.queue_size)
        asyncio.get_running_loop().create_task(_abort(client))
        asyncio.get_running_loop().create_task(self._unlisten())

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """GET /ws: stream persisted events; accepts {"subscribe": {...}} to narrow them."""
        if not origin_allowed(request, self.allowed_origins):
            raise web.HTTPForbidden(reason="Origin not allowed")
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        _cap_send_buffer(request.transport)
        client = WsClient(ws, asyncio.Queue(self.queue_size), request.transport)
        self.clients.add(client)
        self.connected_total += 1
        await self._listen()
        writer = asyncio.create_task(_write(client))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await _on_command(client, message.data)
        finally:
            self.clients.discard(client)
            writer.cancel()
            await self._unlisten()
        return ws


def _cap_send_buffer(transport: asyncio.BaseTransport | None) -> None:
    # Left to itself Linux grows a socket's send buffer to megabytes, which a client that
    # stops reading fills before its queue even starts to; capped, the queue bound is what
    # counts. 256 KiB still carries a few MB/s to a client 100 ms away.
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


async def _write(client: WsClient) -> None:
    try:
        while True:
            items = [await client.queue.get()]
            while not client.queue.empty() and len(items) < MAX_EVENTS_PER_FRAME:
                items.append(client.queue.get_nowait())
            await client.ws.send_str('{"type":"events","events":[' + ",".join(items) + "]}")
    except ConnectionError:
        pass  # the client went away; its handler cleans up


async def _abort(client: WsClient) -> None:
    # A client that does not read may never answer a close handshake; give it a second,
    # then drop the connection.
    try:
        await asyncio.wait_for(
            client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow: queue overflow"),
            1.0,
        )
    except (TimeoutError, ConnectionError):
        # Unless it went down meanwhile: aborting a closed transport fails inside asyncio.
        if client.transport is not None and not client.transport.is_closing():
            client.transport.abort()  # type: ignore[attr-defined]


async def _on_command(client: WsClient, text: str) -> None:
    try:
        command = orjson.loads(text)
        if not isinstance(command, dict) or "subscribe" not in command:
            raise ValueError('expected {"subscribe": {"kinds": [...], "assets": [...]}}')
        client.filter = WsSubscribe.model_validate(command["subscribe"] or {})
    except ValidationError as error:
        await client.ws.send_json({"type": "error", "error": "invalid_subscribe", "message": describe(error)})
    except ValueError as error:
        await client.ws.send_json({"type": "error", "error": "invalid_command", "message": str(error)})
    else:
        await client.ws.send_json({"type": "subscribed", **client.filter.model_dump()})
