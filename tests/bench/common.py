"""Shared pieces of the benchmarks: the daemon as a process, draining WebSocket clients, CPU
time of a process, percentiles."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import orjson

from bus.embedded import free_port

REPO = Path(__file__).resolve().parents[2]
HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
OPCODE_PING, OPCODE_PONG = 0x9, 0xA


class DaemonProcess:
    """`python main.py` in a scratch data folder; its URLs come from the banner's hub.json."""

    def __init__(self, data_dir: Path, python_args: Sequence[str] = (), **env: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        # An empty knowledge folder: indexing at start-up would compete with what is measured.
        self.env.update(HUB_DATA_DIR=str(data_dir), HUB_LOGS_DIR=str(data_dir / "logs"),
                        HUB_KNOWLEDGE_DIR=str(data_dir / "knowledge"),
                        HUB_HTTP_PORT=str(free_port()), HUB_LOG_LEVEL="WARNING", **env)
        self.data_dir = data_dir
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, *python_args, str(REPO / "main.py")], cwd=REPO, env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip().startswith("database"):
                break
        else:
            raise RuntimeError("the hub did not start")
        self.ready_after = time.perf_counter() - started
        state = orjson.loads((data_dir / "hub.json").read_bytes())
        self.nats_url: str = state["nats_url"]
        self.http_url: str = state["http_url"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of PID so far, all its threads (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
