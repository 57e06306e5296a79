"""`python main.py` as a user runs it: a real process with its embedded nats-server."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.daemon_state import pid_alive
from tests.support.hub_process import HubProcess, hub_env
from tests.support.processes import REPO, main_py, run_program
from tests.support.waiting import wait_until


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    return hub_env(tmp_path)


def test_daemon_serves_takes_trades_and_stops_cleanly(daemon_env: dict[str, str], busy_port: int) -> None:
    daemon_env["HUB_NATS_PORT"] = str(busy_port)
    hub = HubProcess(daemon_env)
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

        script = run_program("readme_recent_trades", env=daemon_env, timeout=60)
        assert script.stdout.strip() == f"[({stored['id']}, 'BTC', 'breakout above 44k')]", script.stderr

        nats_server = hub.children()
        assert len(nats_server) == 1
    finally:
        code = hub.stop(signal.SIGTERM)
    assert code == 0
    assert not (Path(daemon_env["HUB_DATA_DIR"]) / "hub.json").exists()
    assert not pid_alive(nats_server[0])


def test_cli_without_a_running_hub_says_so(daemon_env: dict[str, str]) -> None:
    result = main_py("publish-trade", "--asset", "BTC", "--action", "BUY",
                     "--price", "1", "--quantity", "1", "--confidence", "1", env=daemon_env)
    assert result.returncode == 1
    assert "no running hub found" in result.stderr and "python main.py" in result.stderr


def test_cli_help_lists_the_commands() -> None:
    result = main_py("--help")
    assert result.returncode == 0
    for command in ("run", "publish-trade", "schemas"):
        assert command in result.stdout


def test_schemas_command_writes_files(tmp_path: Path) -> None:
    result = main_py("schemas", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    schema = orjson.loads((tmp_path / "TradeExecuted.schema.json").read_bytes())
    assert set(schema["required"]) >= {"event_id", "asset", "action", "price", "quantity", "confidence"}


def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(daemon_env: dict[str, str]) -> None:
    total = 100_000
    daemon_env["HUB_ACK_WAIT_SECONDS"] = "3"  # what the killed hub held comes back after this
    hub = HubProcess(daemon_env)
    nats_url = hub.state()["nats_url"]
    publisher = publish_many(nats_url, total)
    assert publisher.returncode == 0, publisher.stderr
    wait_until(lambda: count_rows(daemon_env) > 0)
    child = hub.children()[0]
    hub.stop(signal.SIGKILL)
    stored_at_kill = count_rows(daemon_env)
    wait_until(lambda: not pid_alive(child), timeout=10)  # the nats-server followed its parent

    hub = HubProcess(daemon_env)
    try:
        wait_until(lambda: count_rows(daemon_env) == total, timeout=90)
        assert distinct_event_ids(daemon_env) == total
    finally:
        hub.stop()
    assert stored_at_kill < total, "the kill came too late to prove anything"


def publish_many(nats_url: str, total: int, first: int = 0) -> subprocess.CompletedProcess[str]:
    """Publish the ETH trades k-FIRST … k-(FIRST+TOTAL-1), acknowledged, from a bot process."""
    return run_program("publish_trades", nats_url, str(total), "--first", str(first), "--prefix", "k",
                       "--assets", "ETH")


def _scalar(env: dict[str, str], sql: str) -> int:
    return int(_column(env, sql)[0])


def count_rows(env: dict[str, str]) -> int:
    return _scalar(env, "SELECT count(*) FROM trades")


def distinct_event_ids(env: dict[str, str]) -> int:
    return _scalar(env, "SELECT count(DISTINCT event_id) FROM trades")


def test_index_and_search_commands_go_through_the_running_hub(daemon_env: dict[str, str], tmp_path: Path) -> None:
    for name in ("technical/rsi.md", "risk/kelly-criterion.md"):
        (tmp_path / "knowledge" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "knowledge" / name, tmp_path / "knowledge" / name)
    hub = HubProcess(daemon_env)
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
    hub = HubProcess(daemon_env)
    try:
        nats_url = hub.state()["nats_url"]

        def publish(total: int, first: int) -> None:
            done = publish_many(nats_url, total, first)
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
    hub = HubProcess(daemon_env)
    try:
        refused = run_program("nats_connect", hub.nats_url, timeout=60)
        assert refused.returncode != 0 and "uthorization" in refused.stderr
        published = hub.cli("publish-trade", "--asset", "ETH", "--action", "SELL", "--price", "3000",
                            "--quantity", "1", "--confidence", "60")
        assert published.returncode == 0, published.stderr
        wait_until(lambda: hub.get("/api/trades")["trades"])
    finally:
        assert hub.stop() == 0


def test_json_logs_name_the_subject_and_event_id_of_what_was_rejected(daemon_env: dict[str, str]) -> None:
    daemon_env.update(HUB_LOG_FORMAT="json", HUB_LOG_LEVEL="INFO")
    hub = HubProcess(daemon_env)
    bad = run_program("publish_events", hub.nats_url, "trades.BTC",
                      stdin=orjson.dumps([{"event_id": "bad-1", "price": -1}]).decode(), timeout=60)
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
    hub = HubProcess(daemon_env)
    events = [backtest(f"crash-bt-{i}", equity_curve=[
        {"timestamp": 1_704_067_200 + 3600 * k, "value": 1000.0 + k * (i % 7), "benchmark": 40000.0 + k}
        for k in range(20_000)]) for i in range(total)]
    sent = run_program("publish_events", hub.nats_url, "backtests.completed", stdin=orjson.dumps(events).decode())
    assert sent.returncode == 0, sent.stderr
    logs = hub.logs_dir
    wait_until(lambda: _scalar(daemon_env, "SELECT count(*) FROM backtests") >= 2)
    hub.stop(signal.SIGKILL)
    stored_at_kill = _scalar(daemon_env, "SELECT count(*) FROM backtests")

    hub = HubProcess(daemon_env)
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
    with sqlite3.connect(Path(env["HUB_DATA_DIR"]) / "hub.db", timeout=10) as db:
        return [row[0] for row in db.execute(sql).fetchall()]
