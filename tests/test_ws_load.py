"""The WebSocket hub under load: 1,000 clients, some slow, some never reading, some vanishing.

The hub runs in this process (start_hub, SQLite) rather than as `python main.py`, because what
is asserted is the hub's own state: its client set, each client's queue and socket write
buffer, its counters, and the number of asyncio tasks in its loop, which another process would
hide. The clients share that loop, so the latency printed at the end includes their parsing
too; bench_latency and bench_soak measure it against a daemon process.

How the groups are built, so that the test depends on no timing:

- fast clients are aiohttp WebSocket clients that parse every frame;
- slow and never-reading clients are raw sockets that complete the handshake and then read
  4 KiB per wave (slow) or nothing (never). Their receive buffer is small and they announce a
  small MSS, which keeps the hub's kernel send buffer for them near 150 KB instead of the 4 MB
  autotuning gives a fast loopback peer: each is cut off after some 350 trades, not 3,000;
- vanishing clients are raw sockets closed without a close frame, half with a reset.

Trades go out in waves of WAVE, and a wave is published only once every fast client has every
earlier trade. With WAVE < QUEUE_SIZE a fast client's queue can never overflow, however loaded
the machine, while the others fall behind by a wave's bytes each time until their queues do.

Asserted: every fast client gets every stored trade, in order, once; every slow and
never-reading client is cut off (close 1013 or a dropped connection) after a gap-free start of
the stream, and counted in dropped_slow, /api/health and /metrics, the vanished ones are
removed and not counted; the hub's bytes per client stay under the transport's bounds; the
hub logs no error; and once everyone has left, no client, subscription or task is left over.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from nats.aio.client import Client as Nats
from nats.js.client import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from handlers.http.keys import WS_HUB
from handlers.http.websocket import WsClient, WsHub
from storage.sql.models import Trade
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import publish_trade, trade
from tests.support.waiting import count_rows, eventually

FAST, SLOW, NEVER, VANISH = 800, 50, 50, 100
CLIENTS = FAST + SLOW + NEVER + VANISH
QUEUE_SIZE = 25
WAVE = 20
SLOW_READ_BYTES = 4096  # per wave; a wave carries some 36 KB
MAX_TRADES = 3000  # the never-reading clients must be cut off well before this
REASONING = "Breakout above the 20-day high on rising volume; trend filter positive. " * 20
HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
OPCODE_TEXT, OPCODE_CLOSE = 0x1, 0x8
TRY_AGAIN_LATER = 1013


@dataclass
class Expected:
    """What every client should see, in order: the published event_ids, and the row ids the
    first client to get each event saw (the others must see the same)."""

    event_ids: list[str] = field(default_factory=list)
    row_ids: list[int] = field(default_factory=list)

    def check(self, position: int, row_id: int, event_id: str) -> str | None:
        if position >= len(self.event_ids) or self.event_ids[position] != event_id:
            return f"event {position}: got {event_id}"
        if position == len(self.row_ids):
            if self.row_ids and row_id <= self.row_ids[-1]:
                return f"event {position}: row id {row_id} after {self.row_ids[-1]}"
            self.row_ids.append(row_id)
        elif self.row_ids[position] != row_id:
            return f"event {position}: row id {row_id}, not {self.row_ids[position]}"
        return None


@dataclass
class Latencies:
    """Publish -> receive, per event and fast client, split by whether slow clients were on."""

    sent: dict[str, tuple[float, str]] = field(default_factory=dict)  # event_id -> (time, phase)
    by_phase: dict[str, array[float]] = field(default_factory=lambda: {"during": array("d"), "after": array("d")})

    def record(self, event_id: str, now: float) -> None:
        sent_at, phase = self.sent[event_id]
        self.by_phase[phase].append(now - sent_at)


@dataclass(eq=False)
class FastClient:
    """An aiohttp client that parses every frame and checks each event against EXPECTED as it
    comes (keeping them all, times 800 clients, would be most of this process's memory)."""

    ws: aiohttp.ClientWebSocketResponse
    expected: Expected
    latencies: Latencies
    received: int = 0
    errors: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.ws.get_extra_info("sockname")[1])

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != WSMsgType.TEXT:
                break
            now = time.perf_counter()
            for event in orjson.loads(message.data)["events"]:
                event_id = event["data"]["event_id"]
                if error := self.expected.check(self.received, event["data"]["id"], event_id):
                    self.errors.append(error)
                self.received += 1
                self.latencies.record(event_id, now)


@dataclass(eq=False)
class RawClient:
    """A WebSocket client on a bare socket: it reads only when told to."""

    sock: socket.socket
    port: int  # ours, the hub's peer port
    received: bytearray = field(default_factory=bytearray)
    ended: bool = False

    @classmethod
    async def open(cls, port: int) -> RawClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, HANDSHAKE)
        received = bytearray()
        while b"\r\n\r\n" not in received:
            received += await loop.sock_recv(sock, 1)
        assert received.startswith(b"HTTP/1.1 101 "), received
        return cls(sock, int(sock.getsockname()[1]))

    def read_some(self, limit: int) -> None:
        """Read what is there, up to LIMIT bytes, without waiting."""
        try:
            data = self.sock.recv(limit)
        except BlockingIOError:
            return
        except ConnectionError:
            self.ended = True
            return
        self.received += data
        self.ended = self.ended or not data

    async def read_to_end(self) -> None:
        """Read until the hub closes the connection (EOF or reset)."""
        loop = asyncio.get_running_loop()
        while not self.ended:
            try:
                data = await loop.sock_recv(self.sock, 1 << 16)
            except ConnectionError:
                data = b""
            self.received += data
            self.ended = not data

    def vanish(self, reset: bool) -> None:
        """Go away without a close frame: a reset, or a plain FIN."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """The complete (unmasked, server-sent) frames received; a frame cut short ends it."""
        data, pos = bytes(self.received), 0
        while pos + 2 <= len(data):
            opcode, length, head = data[pos] & 0x0F, data[pos + 1] & 0x7F, 2
            if length >= 126:
                head = 4 if length == 126 else 10
                length = int.from_bytes(data[pos + 2:pos + head], "big")
            if pos + head + length > len(data):
                return
            yield opcode, data[pos + head:pos + head + length]
            pos += head + length

    def events_and_close_code(self) -> tuple[list[tuple[int, str]], int | None]:
        events: list[tuple[int, str]] = []
        for opcode, payload in self.frames():
            if opcode == OPCODE_TEXT:
                events += [(e["data"]["id"], e["data"]["event_id"]) for e in orjson.loads(payload)["events"]]
            elif opcode == OPCODE_CLOSE:
                return events, int.from_bytes(payload[:2], "big")
        return events, None


@dataclass
class MemorySample:
    """The largest figures seen on the hub while the stream ran."""

    queued: int = 0
    write_buffer: int = 0
    rss_kib: int = 0

    def take(self, ws_hub: WsHub) -> None:
        clients = list(ws_hub.clients)
        queued = sum(c.queue.qsize() for c in clients)
        assert queued <= len(clients) * QUEUE_SIZE
        self.queued = max(self.queued, queued)
        self.write_buffer = max([self.write_buffer, *(_write_buffer(c) for c in clients)])
        self.rss_kib = max(self.rss_kib, rss_kib())


def _write_buffer(client: WsClient) -> int:
    return client.transport.get_write_buffer_size() if client.transport else 0  # type: ignore[attr-defined]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def peer_ports(ws_hub: WsHub) -> set[int]:
    return {int(c.transport.get_extra_info("peername")[1]) for c in ws_hub.clients if c.transport}


def percentiles(values: array[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99))
    return f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms ({len(ordered)})"


@dataclass
class Stream:
    """Publishes trades in waves, each only once every fast client has all earlier ones."""

    js: JetStreamContext
    fast: list[FastClient]
    slow: list[RawClient]
    expected: Expected
    latencies: Latencies
    phase: str = "during"

    @property
    def published(self) -> list[str]:
        return self.expected.event_ids

    async def wave(self) -> None:
        acks = []
        for _ in range(WAVE):
            payload = trade(reasoning=REASONING, price=40_000.0 + len(self.published))
            self.latencies.sent[payload["event_id"]] = (time.perf_counter(), self.phase)
            self.published.append(payload["event_id"])
            acks.append(await self.js.publish_async(f"trades.{payload['asset']}", orjson.dumps(payload),
                                                    headers={"Nats-Msg-Id": payload["event_id"]}))
        await asyncio.gather(*acks)
        total = len(self.published)
        await eventually(lambda: all(c.received >= total for c in self.fast), timeout=60,
                         what=f"every fast client to have {total} trades")
        for client in self.slow:
            client.read_some(SLOW_READ_BYTES)


async def connect_all(hub: Hub, session: aiohttp.ClientSession, expected: Expected,
                      latencies: Latencies) -> tuple[list[FastClient], list[RawClient]]:
    port = hub.http.port
    assert port is not None
    url = f"http://127.0.0.1:{port}/ws"
    fast: list[FastClient] = []
    raw: list[RawClient] = []
    for _ in range(0, FAST, 100):
        sockets = await asyncio.gather(*(session.ws_connect(url, max_msg_size=0) for _ in range(100)))
        fast += [FastClient(ws, expected, latencies) for ws in sockets]
    for _ in range(0, SLOW + NEVER + VANISH, 100):
        raw += await asyncio.gather(*(RawClient.open(port) for _ in range(100)))
    for client in fast:
        client.reader = asyncio.create_task(client.read())
    return fast, raw


async def scrape(hub: Hub, path: str) -> str:
    # Connection: close, so that no keep-alive connection leaves a task in the hub's loop.
    response = await hub.http.get(path, headers={"Connection": "close"})
    assert response.status == 200, await response.text()
    return await response.text()


async def metrics(hub: Hub) -> dict[str, float]:
    text = await scrape(hub, "/metrics")
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name.startswith("hub_ws_")}


def task_kinds() -> Counter[str]:
    """How many tasks of each coroutine this loop holds."""
    return Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())


async def idle_tasks() -> Counter[str]:
    """The tasks in this loop, by kind, once the hub's start-up jobs are done."""
    start_up = {"index-knowledge", "import-reports"}
    await eventually(lambda: not any(t.get_name() in start_up for t in asyncio.all_tasks()),
                     what="the hub's start-up tasks to finish")
    return task_kinds()


async def test_thousand_clients_fast_kept_slow_cut_off_vanished_removed_and_no_task_left(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    raise_fd_limit(3 * CLIENTS + 512)
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, ws_queue_size=QUEUE_SIZE))
    try:
        await run_load(hub, nc)
    finally:
        await hub.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    slow_lines = [r for r in caplog.records if r.name == "handlers.http.websocket" and "too slow" in r.getMessage()]
    assert len(slow_lines) == SLOW + NEVER


async def run_load(hub: Hub, nc: Nats) -> None:
    ws_hub: WsHub = hub.app[WS_HUB]
    js = nc.jetstream()
    # A first trade, before any client: it also opens the publisher's reply subscription,
    # whose task would otherwise appear between the two counts of tasks.
    await publish_trade(nc)
    await (await js.publish_async("trades.BTC", orjson.dumps(trade())))
    await eventually(lambda: _rows(hub, 2), what="the warm-up trades stored")
    tasks_before = await idle_tasks()

    expected, latencies = Expected(), Latencies()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # no cap on sockets
    fast, raw = await connect_all(hub, session, expected, latencies)
    slow, never, vanishing = raw[:SLOW], raw[SLOW:SLOW + NEVER], raw[SLOW + NEVER:]
    await eventually(lambda: len(ws_hub.clients) == CLIENTS, what=f"{CLIENTS} clients connected")
    rss_connected = rss_kib()
    stream, memory = Stream(js, fast, slow, expected, latencies), MemorySample()

    for _ in range(2):
        await stream.wave()
    for i, client in enumerate(vanishing):
        client.vanish(reset=i % 2 == 0)
    gone = {c.port for c in vanishing}
    await eventually(lambda: not peer_ports(ws_hub) & gone, what="vanished clients removed")

    while ws_hub.dropped_slow < SLOW + NEVER and len(stream.published) < MAX_TRADES:
        await stream.wave()
        memory.take(ws_hub)
    cut_after = len(stream.published)
    assert ws_hub.dropped_slow == SLOW + NEVER, f"{ws_hub.dropped_slow} cut off after {cut_after} trades"
    assert peer_ports(ws_hub) == {c.port for c in fast}

    stream.phase = "after"
    for _ in range(3):
        await stream.wave()
        memory.take(ws_hub)
    await check_health_and_metrics(hub)
    assert await count_rows(hub, Trade) == len(stream.published) + 2

    check_fast_clients(fast, expected)
    await asyncio.wait_for(asyncio.gather(*(c.read_to_end() for c in slow + never)), 30)
    closed_1013 = check_cut_off_clients(slow + never, expected)
    check_memory(memory, rss_connected)

    await asyncio.gather(*(c.ws.close() for c in fast))
    await asyncio.gather(*(c.reader for c in fast if c.reader))
    await session.close()
    for client in slow + never:
        client.sock.close()
    await eventually(lambda: not ws_hub.clients and ws_hub._sub is None, what="every client gone")
    await _same_tasks(tasks_before)

    print(f"\n{CLIENTS} clients, queue {QUEUE_SIZE}: {len(stream.published)} trades; slow and "
          f"never-reading clients cut off by trade {cut_after} ({closed_1013} saw close 1013, the "
          f"rest a dropped connection)\n  fast clients' latency while slow ones were connected: "
          f"{percentiles(latencies.by_phase['during'])}\n  after: {percentiles(latencies.by_phase['after'])}"
          f"\n  hub: most queued {memory.queued} events, largest write buffer {memory.write_buffer} B, "
          f"RSS {rss_connected // 1024} -> max {memory.rss_kib // 1024} MiB")


async def _rows(hub: Hub, expected: int) -> bool:
    return await count_rows(hub, Trade) == expected


async def check_health_and_metrics(hub: Hub) -> None:
    health = orjson.loads(await scrape(hub, "/api/health"))
    assert health["status"] == "ok"
    assert health["websocket"] == {"clients": FAST, "connected_total": CLIENTS, "dropped_slow": SLOW + NEVER}
    assert await metrics(hub) == {"hub_ws_clients": FAST, "hub_ws_connections_total": CLIENTS,
                                  "hub_ws_disconnected_slow_total": SLOW + NEVER}


def check_fast_clients(fast: list[FastClient], expected: Expected) -> None:
    """Every fast client got every trade, in the order stored, once."""
    assert len(expected.row_ids) == len(expected.event_ids)
    for client in fast:
        assert client.errors == []
        assert client.received == len(expected.event_ids)


def check_cut_off_clients(clients: list[RawClient], expected: Expected) -> int:
    """Each was disconnected by the hub, after a gap-free start of the stream; returns how
    many got the close frame (1013) rather than a dropped connection."""
    stream = list(zip(expected.row_ids, expected.event_ids))
    closed = 0
    for client in clients:
        assert client.ended
        events, code = client.events_and_close_code()
        assert events == stream[:len(events)]
        assert len(events) < len(stream)
        assert code in (None, TRY_AGAIN_LATER)
        closed += code == TRY_AGAIN_LATER
    return closed


def check_memory(memory: MemorySample, rss_connected: int) -> None:
    """Each client's bytes stay under one bound: the transport's high-water mark, what
    aiohttp writes between two looks at it, and one frame (at most a queue's worth)."""
    frame = QUEUE_SIZE * (len(REASONING) + 1024)
    assert memory.write_buffer <= 64 * 1024 + DEFAULT_CHUNK_SIZE + frame
    assert memory.queued <= CLIENTS * QUEUE_SIZE
    # A sanity net, not a measure: the clients' frames live in this process too (some 120 MiB
    # at the peak of a wave, measured); half a MiB per client means buffering got out of hand.
    assert memory.rss_kib - rss_connected < CLIENTS * 512


async def _same_tasks(before: Counter[str]) -> None:
    """No kind of task grew beyond its count BEFORE the clients. (Kinds, not the total: a
    background worker's short task, alive when BEFORE was taken and done since, once made the
    total one lower and hid nothing but failed the test.)"""
    try:
        await eventually(lambda: not task_kinds() - before, timeout=15,
                         what="no more tasks of any kind than before the clients")
    except AssertionError:
        raise AssertionError(f"tasks beyond those before the clients: {task_kinds() - before}") from None
