"""`python main.py` as a user runs it: a real process with its embedded nats-server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import urllib.request

from bus.embedded import free_port, pid_alive

REPO = Path(__file__).resolve().parent.parent


class Daemon:
    """One `python main.py` process and the environment it was started with."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process = subprocess.Popen([sys.executable, "main.py"], cwd=REPO, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.banner = self._read_until("database")
        # Keep reading: a hub that logs into a full pipe would block on its next log line.
        self._rest: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._rest.append(line)

    def _read_until(self, marker: str, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("the hub exited:\n" + "".join(lines))
            lines.append(line)
            if line.strip().startswith(marker):
                return "".join(lines)
        raise AssertionError("no banner:\n" + "".join(lines))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.env['HUB_HTTP_PORT']}"

    def get(self, path: str) -> dict:  # type: ignore[type-arg]
        with urllib.request.urlopen(self.http + path, timeout=5) as response:
            return orjson.loads(response.read())  # type: ignore[no-any-return]

    def state(self) -> dict:  # type: ignore[type-arg]
        return orjson.loads((Path(self.env["HUB_DATA_DIR"]) / "hub.json").read_bytes())  # type: ignore[no-any-return]

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(30)
        self._reader.join(10)
        self.output = "".join(self._rest)  # what it printed after the banner
        return code


def wait_until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on, like the machine's own NATS on 4222."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(tmp_path / "data"), HUB_LOGS_DIR=str(tmp_path / "logs"),
               HUB_KNOWLEDGE_DIR=str(tmp_path / "knowledge"),
               HUB_HTTP_PORT=str(free_port()), HUB_NATS_PORT=str(free_port()))
    return env


def test_daemon_serves_takes_trades_and_stops_cleanly(daemon_env: dict[str, str], busy_port: int) -> None:
    daemon_env["HUB_NATS_PORT"] = str(busy_port)
    hub = Daemon(daemon_env)
    try:
        assert f"port {busy_port} is in use" in hub.banner
        nats_url = hub.state()["nats_url"]
        assert nats_url in hub.banner and not nats_url.endswith(f":{busy_port}")
        health = hub.get("/api/health")
        assert health["status"] == "ok" and health["nats"]["detail"]["embedded"] is True

        # The CLI finds the daemon's NATS by itself: no URL is passed.
        published = hub.cli("publish-trade", "--asset", "BTC", "--action", "BUY", "--price", "45000",
                            "--quantity", "0.1", "--reasoning", "breakout above 44k", "--confidence", "85")
        assert published.returncode == 0, published.stderr
        wait_until(lambda: hub.get("/api/trades")["trades"])
        [stored] = hub.get("/api/trades")["trades"]
        assert (stored["asset"], stored["price"], stored["confidence"]) == ("BTC", 45000.0, 85.0)

        snippet = ("from storage.database import SessionLocal, Trade\n"
                   "session = SessionLocal()\n"
                   "recent_trades = session.query(Trade).order_by(Trade.timestamp.desc()).limit(10).all()\n"
                   "session.close()\n"
                   "print([(t.id, t.asset, t.reasoning) for t in recent_trades])\n")
        script = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=daemon_env,
                                capture_output=True, text=True, timeout=60)
        assert script.stdout.strip() == f"[({stored['id']}, 'BTC', 'breakout above 44k')]", script.stderr

        nats_server = hub.children()
        assert len(nats_server) == 1
    finally:
        code = hub.stop(signal.SIGTERM)
    assert code == 0
    assert not (Path(daemon_env["HUB_DATA_DIR"]) / "hub.json").exists()
    assert not pid_alive(nats_server[0])


def test_cli_without_a_running_hub_says_so(daemon_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "main.py", "publish-trade", "--asset", "BTC", "--action", "BUY",
                             "--price", "1", "--quantity", "1", "--confidence", "1"],
                            cwd=REPO, env=daemon_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no running hub found" in result.stderr and "python main.py" in result.stderr


def test_cli_help_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("run", "publish-trade", "schemas"):
        assert command in result.stdout


def test_schemas_command_writes_files(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "main.py", "schemas", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    schema = orjson.loads((tmp_path / "TradeExecuted.schema.json").read_bytes())
    assert set(schema["required"]) >= {"event_id", "asset", "action", "price", "quantity", "confidence"}


def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(daemon_env: dict[str, str]) -> None:
    total = 100_000
    daemon_env["HUB_ACK_WAIT_SECONDS"] = "3"  # what the killed hub held comes back after this
    hub = Daemon(daemon_env)
    nats_url = hub.state()["nats_url"]
    publisher = subprocess.run(
        [sys.executable, "-c", PUBLISH_MANY, nats_url, str(total)], cwd=REPO, capture_output=True,
        text=True, timeout=120)
    assert publisher.returncode == 0, publisher.stderr
    wait_until(lambda: count_rows(daemon_env) > 0)
    child = hub.children()[0]
    hub.stop(signal.SIGKILL)
    stored_at_kill = count_rows(daemon_env)
    wait_until(lambda: not pid_alive(child), timeout=10)  # the nats-server followed its parent

    hub = Daemon(daemon_env)
    try:
        wait_until(lambda: count_rows(daemon_env) == total, timeout=90)
        assert distinct_event_ids(daemon_env) == total
    finally:
        hub.stop()
    assert stored_at_kill < total, "the kill came too late to prove anything"


PUBLISH_MANY = """
import asyncio, sys, orjson
import nats
async def main(url, total, first=0):
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    acks = []
    for i in range(first, first + total):
        body = {"event_id": f"k-{i}", "asset": "ETH", "action": "BUY", "price": 1.0 + i,
                "quantity": 1.0, "confidence": 50, "reasoning": "crash test"}
        acks.append(await js.publish_async("trades.ETH", orjson.dumps(body), headers={"Nats-Msg-Id": f"k-{i}"}))
        if len(acks) >= 4000:
            await asyncio.gather(*acks)
            acks.clear()
    await asyncio.gather(*acks)
    while (await js.stream_info("HUB")).state.messages < first + total:
        await asyncio.sleep(0.05)
    await nc.close()
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0))
"""


def _scalar(env: dict[str, str], sql: str) -> int:
    import sqlite3

    with sqlite3.connect(Path(env["HUB_DATA_DIR"]) / "hub.db", timeout=10) as db:
        return int(db.execute(sql).fetchone()[0])


def count_rows(env: dict[str, str]) -> int:
    return _scalar(env, "SELECT count(*) FROM trades")


def distinct_event_ids(env: dict[str, str]) -> int:
    return _scalar(env, "SELECT count(DISTINCT event_id) FROM trades")


def test_index_and_search_commands_go_through_the_running_hub(daemon_env: dict[str, str], tmp_path: Path) -> None:
    import shutil

    for name in ("technical/rsi.md", "risk/kelly-criterion.md"):
        (tmp_path / "knowledge" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "knowledge" / name, tmp_path / "knowledge" / name)
    hub = Daemon(daemon_env)
    try:
        wait_until(lambda: sum(d["files"] for d in hub.get("/api/knowledge")["domains"]) == 2, timeout=60)
        found = hub.cli("search", "what RSI level means oversold", "-k", "2")
        assert found.returncode == 0, found.stderr
        assert found.stdout.startswith("1. [") and "technical/rsi.md" in found.stdout.splitlines()[0]
        indexed = hub.cli("index", "--domain", "risk")
        assert indexed.returncode == 0, indexed.stderr
        assert "asking the running hub" in indexed.stderr
        assert "risk" in indexed.stdout and "1 unchanged" in indexed.stdout
    finally:
        assert hub.stop() == 0


def test_embedded_nats_server_that_dies_is_restarted_and_nothing_is_lost(daemon_env: dict[str, str]) -> None:
    hub = Daemon(daemon_env)
    try:
        nats_url = hub.state()["nats_url"]

        def publish(total: int, first: int) -> None:
            done = subprocess.run([sys.executable, "-c", PUBLISH_MANY, nats_url, str(total), str(first)],
                                  cwd=REPO, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr

        publish(500, 0)
        wait_until(lambda: count_rows(daemon_env) == 500)
        [first_server] = hub.children()
        os.kill(first_server, signal.SIGKILL)
        # (Degraded-while-away is tested with an external NATS: here the outage is too short
        # to observe reliably.)
        wait_until(lambda: hub.get("/api/health")["nats"]["detail"]["restarts"] == 1, timeout=20)
        assert hub.children() and hub.children()[0] != first_server
        wait_until(lambda: hub.get("/api/health")["status"] == "ok", timeout=20)
        publish(500, 500)
        wait_until(lambda: count_rows(daemon_env) == 1000, timeout=60)
        assert distinct_event_ids(daemon_env) == 1000
        assert hub.process.poll() is None
    finally:
        assert hub.stop() == 0


def test_nats_token_is_required_by_the_embedded_server_and_used_by_hub_and_cli(
    daemon_env: dict[str, str]
) -> None:
    daemon_env["HUB_NATS_TOKEN"] = "nats-s3cret"
    hub = Daemon(daemon_env)
    try:
        refused = subprocess.run(
            [sys.executable, "-c", "import asyncio, nats, sys\n"
             "async def main():\n    await nats.connect(sys.argv[1], max_reconnect_attempts=0, allow_reconnect=False)\n"
             "asyncio.run(main())", hub.state()["nats_url"]],
            capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "uthorization" in refused.stderr
        published = hub.cli("publish-trade", "--asset", "ETH", "--action", "SELL", "--price", "3000",
                            "--quantity", "1", "--confidence", "60")
        assert published.returncode == 0, published.stderr
        wait_until(lambda: hub.get("/api/trades")["trades"])
    finally:
        assert hub.stop() == 0


def test_json_logs_name_the_subject_and_event_id_of_what_was_rejected(daemon_env: dict[str, str]) -> None:
    daemon_env.update(HUB_LOG_FORMAT="json", HUB_LOG_LEVEL="INFO")
    hub = Daemon(daemon_env)
    bad = subprocess.run(
        [sys.executable, "-c", "import asyncio, nats, sys\n"
         "async def main():\n    nc = await nats.connect(sys.argv[1])\n"
         "    await nc.jetstream().publish('trades.BTC', b'{\"event_id\": \"bad-1\", \"price\": -1}')\n"
         "    await nc.close()\nasyncio.run(main())", hub.state()["nats_url"]],
        capture_output=True, text=True, timeout=60)
    assert bad.returncode == 0, bad.stderr
    wait_until(lambda: hub.get("/api/health")["consumers"]["trades"]["dead_lettered"] == 1)
    assert hub.stop() == 0
    records = [orjson.loads(line) for line in hub.output.splitlines() if line.startswith("{")]
    [rejected] = [r for r in records if r.get("event_id") == "bad-1"]
    assert rejected["level"] == "WARNING" and rejected["subject"] == "trades.BTC"
    assert "price" in rejected["reason"] and "time" in rejected


def test_kill_9_while_backtests_stream_in_leaves_rows_and_reports_consistent(
    daemon_env: dict[str, str]
) -> None:
    from tests.test_backtests import backtest

    total = 30
    daemon_env["HUB_ACK_WAIT_SECONDS"] = "3"
    hub = Daemon(daemon_env)
    events = [backtest(f"crash-bt-{i}", equity_curve=[
        {"timestamp": 1_704_067_200 + 3600 * k, "value": 1000.0 + k * (i % 7), "benchmark": 40000.0 + k}
        for k in range(20_000)]) for i in range(total)]
    script = ("import asyncio, sys, orjson, nats\n"
              "async def main():\n    nc = await nats.connect(sys.argv[1]); js = nc.jetstream()\n"
              "    for event in orjson.loads(sys.stdin.buffer.read()):\n"
              "        await js.publish('backtests.completed', orjson.dumps(event))\n"
              "    await nc.close()\nasyncio.run(main())")
    sent = subprocess.run([sys.executable, "-c", script, hub.state()["nats_url"]], input=orjson.dumps(events),
                          capture_output=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    logs = Path(daemon_env["HUB_LOGS_DIR"])
    wait_until(lambda: _scalar(daemon_env, "SELECT count(*) FROM backtests") >= 2)
    hub.stop(signal.SIGKILL)
    stored_at_kill = _scalar(daemon_env, "SELECT count(*) FROM backtests")

    hub = Daemon(daemon_env)
    try:
        wait_until(lambda: _scalar(daemon_env, "SELECT count(*) FROM backtests") == total, timeout=120)
        wait_until(lambda: len(list(logs.glob("backtest_*.json"))) == total, timeout=60)
    finally:
        hub.stop()
    ids = {int(row) for row in _column(daemon_env, "SELECT id FROM backtests")}
    assert {int(p.stem.split("_")[1]) for p in logs.glob("backtest_*.json")} == ids  # no orphan
    assert _scalar(daemon_env, "SELECT count(DISTINCT event_id) FROM backtests") == total  # no double
    assert not [p for p in logs.iterdir() if p.name.startswith(".")]  # no half-written leftovers
    assert stored_at_kill < total, "the kill came too late to prove anything"


def _column(env: dict[str, str], sql: str) -> list[Any]:
    import sqlite3

    with sqlite3.connect(Path(env["HUB_DATA_DIR"]) / "hub.db", timeout=10) as db:
        return [row[0] for row in db.execute(sql).fetchall()]
