"""`python main.py` as a user runs it: a real process in a scratch folder of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bus.embedded import free_port
from tests.support.processes import REPO, main_py

BANNER_END = "database"  # the banner's last line starts with it


def hub_env(home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a hub isolated in HOME (data/, logs/, an empty knowledge/, free ports),
    with none of the caller's HUB_ variables, then OVERRIDES."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(home / "data"), HUB_LOGS_DIR=str(home / "logs"),
               HUB_KNOWLEDGE_DIR=str(home / "knowledge"),
               HUB_HTTP_PORT=str(free_port()), HUB_NATS_PORT=str(free_port()), **overrides)
    return env


class HubProcess:
    """One `python main.py` process, started and ready (its banner printed), and what it prints.

    COMMAND replaces `python main.py` (e.g. a helper program that runs main.py under a profiler).
    """

    def __init__(self, env: dict[str, str], command: Sequence[str] | None = None, timeout: float = 60) -> None:
        self.env = env
        started = time.perf_counter()
        self.process = subprocess.Popen(list(command or (sys.executable, "main.py")), cwd=REPO, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._lines: list[str] = []
        self._banner_end: int | None = None
        self._banner_seen = threading.Event()
        # Read everything, all along: a hub that logs into a full pipe would block on its next line.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._banner_seen.wait(timeout):
            self.process.kill()
            self._reader.join(10)
            raise AssertionError(f"no banner after {timeout:.0f} s:\n" + "".join(self._lines))
        if self._banner_end is None:
            self._reader.join(10)
            raise AssertionError("the hub exited:\n" + "".join(self._lines))
        self.ready_after: float = time.perf_counter() - started
        self.banner: str = "".join(self._lines[:self._banner_end])
        self.nats_url: str = self.state()["nats_url"]

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)
            if self._banner_end is None and line.strip().startswith(BANNER_END):
                self._banner_end = len(self._lines)
                self._banner_seen.set()
        self._banner_seen.set()  # it exited: nobody waits for a banner any more

    @property
    def output(self) -> str:
        """What it printed after the banner, so far (all of it once stop() returned)."""
        return "".join(self._lines[self._banner_end or 0:])

    @property
    def data_dir(self) -> Path:
        return Path(self.env["HUB_DATA_DIR"])

    @property
    def logs_dir(self) -> Path:
        return Path(self.env["HUB_LOGS_DIR"])

    @property
    def knowledge_dir(self) -> Path:
        return Path(self.env["HUB_KNOWLEDGE_DIR"])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HUB_HTTP_PORT']}"

    def get(self, path: str) -> Any:
        """GET PATH of its HTTP API: the JSON body (an error status raises)."""
        with urllib.request.urlopen(self.http_url + path, timeout=5) as response:
            return orjson.loads(response.read())

    def state(self) -> Any:
        """Its hub.json: how the CLI finds the running hub."""
        return orjson.loads((self.data_dir / "hub.json").read_bytes())

    def children(self) -> list[int]:
        """Pids of its child processes (the embedded nats-server)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python main.py ARGS` in the same environment: the CLI beside the running hub."""
        return main_py(*args, env=self.env)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send SIGNUM (unless it has exited), wait for it to exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code
