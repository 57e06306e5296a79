"""Shared pieces of the benchmarks: the hub as it is measured, waiting for its rows, draining
WebSocket clients, CPU time of a process, percentiles."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

from nats.js import JetStreamContext
from sqlalchemy import text

from storage.sql.engine import create_sync_engine
from tests.support.hub_process import HubProcess, hub_env
from tests.support.postgres import PG_ENV

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
OPCODE_PING, OPCODE_PONG = 0x9, 0xA


def add_database_options(cli: argparse.ArgumentParser) -> None:
    """--postgres and --database-url: the PostgreSQL server a benchmark runs on (SQLite without)."""
    backend = cli.add_mutually_exclusive_group()
    backend.add_argument("--postgres", action="store_true",
                         help=f"on PostgreSQL: the server of {PG_ENV} (default {DEFAULT_PG})")
    backend.add_argument("--database-url", help="on the PostgreSQL server of this SQLAlchemy URL")


def database_server(args: argparse.Namespace) -> str | None:
    """The PostgreSQL server the options of add_database_options() name, or None for SQLite."""
    return args.database_url or (os.environ.get(PG_ENV, DEFAULT_PG) if args.postgres else None)


def quiet_hub(home: Path, command: Sequence[str] | None = None, **env: str) -> HubProcess:
    """`python main.py` in HOME, logging warnings only, with an empty knowledge folder (unless
    HOME/knowledge holds files): indexing at start-up would compete with what is measured."""
    return HubProcess(hub_env(home, HUB_LOG_LEVEL="WARNING", **env), command)


def wait_for_rows(database_url: str, total: int, publisher: subprocess.Popen[str] | None = None,
                  limit: float = 600.0, poll: float = 0.05) -> float:
    """Poll until TOTAL trades are stored (SQLite or PostgreSQL); the moment they were (perf_counter).

    max(id) is an index lookup; count(*) would scan the table 20 times a second and load the
    database being measured. The count confirms once max(id) says the end may be there (ids of
    concurrent transactions commit out of order).
    """
    deadline = time.perf_counter() + limit
    engine = create_sync_engine(database_url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            def scalar(sql: str) -> int:
                return int(connection.execute(text(sql)).scalar_one())

            while not (scalar("SELECT coalesce(max(id), 0) FROM trades") >= total
                       and scalar("SELECT count(*) FROM trades") >= total):
                if publisher is not None and publisher.poll() not in (None, 0):
                    raise RuntimeError("the publisher failed")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {scalar('SELECT count(*) FROM trades')} of {total} rows arrived")
                time.sleep(poll)
            return time.perf_counter()
    finally:
        engine.dispose()


def pause_consumer(nats_url: str, durable: str) -> None:
    """Pause the durable consumer of trades DURABLE on the HUB stream: while it is paused the
    hub's pull requests wait, and a backlog builds up."""
    asyncio.run(_with_jetstream(nats_url, lambda js: js.pause_consumer("HUB", durable, "2100-01-01T00:00:00Z")))


def resume_consumer(nats_url: str, durable: str) -> float:
    """Resume DURABLE; the moment it began delivering again (resume_and_wait_for_delivery)."""
    return cast(float, asyncio.run(_with_jetstream(
        nats_url, lambda js: resume_and_wait_for_delivery(js, durable))))


async def _with_jetstream(nats_url: str, call: Callable[[JetStreamContext], Awaitable[Any]]) -> Any:
    from bus.connection import connect

    nc = await connect(nats_url, "bench")
    try:
        return await call(nc.jetstream())
    finally:
        await nc.close()


async def resume_and_wait_for_delivery(js: JetStreamContext, durable: str, poll: float = 0.002) -> float:
    """Resume the paused consumer DURABLE of the HUB stream; the moment (perf_counter) it began
    delivering again, at the earliest: when the last poll that saw nothing delivered answered.

    Not the moment of the resume request: nats-server serves a pull request made while the
    consumer was paused only at that request's next idle heartbeat (with the hub's 2 s: 1.0 to
    1.5 s after the resume, measured; a request made after the resume is served in 3 ms), a
    delay of the server's that a bare consumer starting with a fresh request never sees.
    """
    before = (await js.consumer_info("HUB", durable)).delivered.consumer_seq
    await js.resume_consumer("HUB", durable)
    deadline = time.perf_counter() + 60.0
    while (asked := time.perf_counter()) < deadline:
        await asyncio.sleep(poll)
        if (await js.consumer_info("HUB", durable)).delivered.consumer_seq > before:
            return asked
    raise RuntimeError(f"{durable} delivered nothing within 60 s of its resume")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class Drain(asyncio.Protocol):
    """A WebSocket client that reads everything and looks at nothing but frame headers, to
    answer pings: the hub drops a client that has not answered its heartbeat within 30 s
    (a client that only read would be gone after 45 s)."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.pending = bytearray()  # an incomplete header, or a ping being received
        self.skip = 0  # bytes of the current frame's payload still to come
        self.upgraded = False
        self.received = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not asyncio.Transport
        self.transport.write(HANDSHAKE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.skip >= len(data):
            self.skip -= len(data)
            return
        self.pending += memoryview(data)[self.skip:]
        self.skip = 0
        if not self.upgraded:
            end = self.pending.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.pending[:end + 4]
            self.upgraded = True
        self._frames()

    def _frames(self) -> None:
        while len(self.pending) >= 2:
            opcode, length, head = self.pending[0] & 0x0F, self.pending[1] & 0x7F, 2
            if length >= 126:
                head = 4 if length == 126 else 10
                if len(self.pending) < head:
                    return
                length = int.from_bytes(self.pending[2:head], "big")
            if opcode == OPCODE_PING:
                if len(self.pending) < head + length:
                    return
                self._pong(bytes(self.pending[head:head + length]))
            if len(self.pending) < head + length:
                self.skip = head + length - len(self.pending)
                self.pending.clear()
                return
            del self.pending[:head + length]

    def _pong(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes([0x80 | OPCODE_PONG, 0x80 | len(payload)]) + mask + masked)


async def open_drain(host: str, port: int) -> Drain:
    _, drain = await asyncio.get_running_loop().create_connection(Drain, host, port)
    return drain


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / tick, sum(values) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of PID so far, all its threads (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
