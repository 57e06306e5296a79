"""The README's first hour, as a new user meets it: real `python main.py` processes and ports."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from bus.connection import connect
from bus.embedded import free_port
from bus.streams import ensure_hub_streams
from tests.support.hub_process import HubProcess, hub_env
from tests.support.nats_server import NatsServer
from tests.support.processes import REPO, main_py, run_program
from tests.support.waiting import wait_until

RSI = "technical/rsi.md"


def env_of(home: Path, **overrides: str) -> dict[str, str]:
    """A hub's isolated environment in HOME, with OVERRIDES."""
    return {**hub_env(home), **overrides}


def with_knowledge(home: Path, *names: str) -> None:
    """Copy shipped knowledge files into HOME/knowledge."""
    for name in names:
        (home / "knowledge" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "knowledge" / name, home / "knowledge" / name)


async def make_streams(url: str) -> None:
    nc = await connect(url, "test-streams")
    await ensure_hub_streams(nc.jetstream(), "HUB", 1, 1, 1 << 20)
    await nc.close()


def indexed_files(hub: HubProcess) -> int:
    return sum(d["files"] for d in hub.get("/api/knowledge")["domains"])


def test_a_taken_nats_port_gives_the_same_address_on_every_restart(tmp_path: Path, busy_port: int) -> None:
    env = env_of(tmp_path, HUB_NATS_PORT=str(busy_port))
    first = HubProcess(env)
    try:
        url = first.nats_url
        assert not url.endswith(f":{busy_port}") and "HUB_NATS_PORT" in first.banner
        printed = first.cli("nats-url")
        assert printed.returncode == 0 and printed.stdout == url + "\n" and printed.stderr == ""
    finally:
        assert first.stop() == 0
    stopped = main_py("nats-url", env=env)
    assert stopped.returncode == 1 and stopped.stdout == "" and "no running hub" in stopped.stderr
    second = HubProcess(env)
    try:
        assert second.nats_url == url  # a bot configured once still finds it
    finally:
        assert second.stop() == 0


def test_the_seed_indexer_snippet_works_beside_the_daemon(tmp_path: Path) -> None:
    with_knowledge(tmp_path, RSI)
    hub = HubProcess(hub_env(tmp_path))
    try:
        wait_until(lambda: indexed_files(hub) == 1, timeout=60)
        with_knowledge(tmp_path, "risk/kelly-criterion.md")
        done = run_program("seed_indexer_snippet", env=hub.env)
        assert done.returncode == 0, done.stderr
        stats, opened = done.stdout.splitlines()
        assert "'risk': " in stats and "'added': 1" in stats
        assert opened == "opened the store itself: False"
        # The daemon did the work in its own store: its search sees the new document at once.
        found = hub.get("/api/knowledge/search?q=kelly+criterion+position+size&k=1")["results"]
        assert found[0]["source"] == "risk/kelly-criterion.md"
    finally:
        assert hub.stop() == 0


@pytest.mark.parametrize("where", ["nats-without-hub", "nats-down"])
def test_without_a_hub_index_and_search_run_locally_in_seconds(tmp_path: Path, where: str) -> None:
    with NatsServer(tmp_path / "nats") as server:  # its own: the session's holds other tests' streams
        run_without_a_hub(tmp_path, server.url, where)


def run_without_a_hub(tmp_path: Path, nats_url: str, where: str) -> None:
    with_knowledge(tmp_path, RSI)
    url = nats_url if where == "nats-without-hub" else f"nats://127.0.0.1:{free_port()}"
    env = env_of(tmp_path, HUB_NATS_URL=url)
    trade = ("publish-trade", "--asset", "BTC", "--action", "BUY", "--price", "1", "--quantity", "1",
             "--confidence", "50")
    refused = main_py(*trade, env=env, timeout=90)  # no stream: no hub ever ran there
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("error: ") and "Error" not in refused.stderr
    if where == "nats-without-hub":  # a stream nobody consumes meant a ten-minute wait
        asyncio.run(make_streams(nats_url))
        assert main_py(*trade, env=env, timeout=90).returncode == 0
    indexed = main_py("index", env=env, timeout=120)  # the old wait was 600 s
    assert indexed.returncode == 0, indexed.stderr
    assert "asking the running hub" not in indexed.stderr and "Error" not in indexed.stderr
    assert "technical" in indexed.stdout and "1 added" in indexed.stdout
    found = main_py("search", "what RSI level means oversold", "-k", "1", env=env, timeout=90)
    assert found.returncode == 0 and RSI in found.stdout, found.stderr


def test_a_recorded_hub_that_does_not_answer_is_named_not_bypassed(tmp_path: Path, nats_url: str) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])  # a live pid, recorded as the hub, answering nothing
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "hub.json").write_text(f'{{"pid": {sleeper.pid}, "nats_url": "{nats_url}", '
                                       '"http_url": "http://127.0.0.1:9"}')
        env = hub_env(tmp_path)
        searched = main_py("search", "rsi", env=env, timeout=30)
        assert searched.returncode == 1 and "Traceback" not in searched.stderr
        assert searched.stderr.startswith(f"error: the hub (pid {sleeper.pid}) does not answer")
    finally:
        sleeper.kill()
        sleeper.wait()


BAD_INPUT = [
    (["publish-trade", "--asset", "BTC", "--action", "BUY", "--price", "1", "--quantity", "1",
      "--confidence", "150"], "--confidence must be less than or equal to 100"),
    (["publish-trade", "--asset", "BTC", "--action", "HOLD", "--price", "1", "--quantity", "1",
      "--confidence", "50"], "--action must be 'BUY' or 'SELL'"),
    (["publish-trade", "--asset", "BTC", "--action", "BUY", "--price", "-1", "--quantity", "1",
      "--confidence", "50"], "--price must be greater than 0"),
    (["publish-trade", "--asset", "BTC", "--action", "BUY", "--price", "cheap", "--quantity", "1",
      "--confidence", "50"], "argument --price: invalid float value: 'cheap'"),
    (["publish-trade", "--action", "BUY"], "the following arguments are required: --asset"),
    (["search", "rsi", "--domain", "bogus"], "argument --domain: invalid choice: 'bogus'"),
    (["search", "rsi", "-k", "0"], "-k must be greater than or equal to 1"),
    (["search", ""], "the query must have at least 1 character"),
    (["index", "--domain", "bogus"], "argument --domain: invalid choice: 'bogus'"),
    (["recall", ""], "the reasoning must have at least 1 character"),
    (["recall", "rsi oversold", "-k", "0"], "-k must be greater than or equal to 1"),
    (["recall", "rsi oversold", "--asset", "btc usd"], "--asset"),
    (["view-trades", "latest"], "argument id: invalid int value: 'latest'"),
    (["db", "sideways"], "argument action: invalid choice: 'sideways'"),
    (["launch"], "invalid choice: 'launch'"),
]


@pytest.mark.parametrize(("args", "said"), BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_command_line_input_is_one_line_and_exit_status_2(
    tmp_path: Path, args: list[str], said: str
) -> None:
    done = main_py(*args, env=hub_env(tmp_path), timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert said in done.stderr and "pydantic" not in done.stderr and "Traceback" not in done.stderr


def test_a_bad_setting_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    done = main_py("nats-url", env=env_of(tmp_path, HUB_HTTP_PORT="eighty"), timeout=30)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: HUB_HTTP_PORT must be a valid integer")


def test_index_through_the_hub_draws_progress_like_the_local_run(tmp_path: Path) -> None:
    with_knowledge(tmp_path, RSI)
    with_knowledge(tmp_path / "alone", RSI)
    local = main_py("index", env=hub_env(tmp_path / "alone"), timeout=60)
    assert local.returncode == 0, local.stderr
    hub = HubProcess(hub_env(tmp_path))
    try:
        wait_until(lambda: indexed_files(hub) == 1, timeout=60)
        remote = hub.cli("index", "--domain", "technical")
        assert remote.returncode == 0, remote.stderr
    finally:
        assert hub.stop() == 0
    for run in (local, remote):
        bars = [line for line in run.stderr.splitlines() if line.startswith("technical")]
        assert bars and bars[-1].rstrip().endswith("1/1 files"), run.stderr


def test_health_says_when_the_embedder_is_warm(tmp_path: Path) -> None:
    hub = HubProcess(hub_env(tmp_path))
    try:
        # Ready to serve before the model is loaded; the model then loads by itself.
        assert hub.get("/api/health")["status"] == "ok"
        wait_until(lambda: hub.get("/api/health")["embedder"]["detail"]["ready"], timeout=60)
    finally:
        assert hub.stop() == 0
