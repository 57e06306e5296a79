"""Several hub instances against one NATS and one database.

The durable consumers are shared by name, so the instances split the stream between them;
each announces what it stored on core NATS, so every instance's WebSocket clients see every
stored trade. Three `python main.py` processes share one PostgreSQL database, and one is killed
with SIGKILL mid-stream: what it held comes back to the others after ack_wait, and the unique
event_id keeps the replays from doubling anything.

An instance that dies after its commit must not take the announcement with it: the hub
announces before it acks, on the same connection, so a lost announcement means a lost ack and
a redelivery, and a redelivered trade that is already stored is announced again. The two
small tests at the end pin both rules down; the big one only meets that window by chance.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from sqlalchemy import text

from bus.connection import connect
from handlers.http.keys import CONSUMERS
from storage.sql.engine import create_sync_engine
from tests.support.hub_app import Hub
from tests.support.hub_process import HubProcess, hub_env
from tests.support.payloads import publish_raw, trade
from tests.support.processes import start_program
from tests.support.waiting import eventually, wait_until
from tests.test_backtests import backtest

TOTAL = 100_000
INSTANCES = 3


class WsCollector:
    """A WebSocket client of one hub instance, in its own process (programs/ws_collector.py)."""

    def __init__(self, ws_url: str, out: Path) -> None:
        self.out = out
        self.process = start_program("ws_collector", ws_url, str(TOTAL), str(out), stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "connected"

    def result(self, timeout: float) -> dict[str, Any]:
        """What it saw; waits TIMEOUT for it to see everything, then asks it to stop."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        assert self.process.returncode == 0, f"collector failed ({self.process.returncode})"
        return orjson.loads(self.out.read_bytes())  # type: ignore[no-any-return]


def instance_env(tmp_path: Path, index: int, nats_url: str, database_url: str) -> dict[str, str]:
    """One instance's environment: its own port and folders, the shared NATS and database."""
    return hub_env(tmp_path / f"hub{index}", HUB_NATS_URL=nats_url, HUB_DATABASE_URL=database_url,
                   HUB_ACK_WAIT_SECONDS="10",  # what the killed instance held comes back after this
                   # The clients share two cores with everything else; a slow-client cut-off
                   # (tested in test_websocket) would only hide what this test looks for.
                   HUB_WS_QUEUE_SIZE="1000000", HUB_LOG_LEVEL="WARNING")


async def _delete_streams(nats_url: str) -> None:
    client = await connect(nats_url, "test-reset")
    js = client.jetstream()
    for info in await js.streams_info():
        assert info.config.name is not None
        await js.delete_stream(info.config.name)
    await client.close()


def persisted(hub: HubProcess) -> int:
    """Trades this instance stored itself (new rows, not replays)."""
    return int(hub.get("/api/health")["consumers"]["trades"]["persisted"])


def test_three_instances_share_the_stream_survive_a_kill_9_and_all_clients_see_everything(
    tmp_path: Path, nats_url: str, pg_url: str
) -> None:
    asyncio.run(_delete_streams(nats_url))  # the session's server: start from an empty stream
    engine = create_sync_engine(pg_url)

    def scalar(sql: str) -> int:
        with engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar_one())

    # One after another: each creates the schema before its banner, so they never race on it.
    hubs = [HubProcess(instance_env(tmp_path, i, nats_url, pg_url)) for i in range(INSTANCES)]
    publisher: subprocess.Popen[str] | None = None
    clients: list[WsCollector] = []
    try:
        clients += [WsCollector(hub.http_url.replace("http", "ws", 1) + "/ws", tmp_path / f"seen{i}.json")
                   for i, hub in enumerate(hubs)]
        wait_until(lambda: all(h.get("/api/health")["websocket"]["clients"] == 1 for h in hubs))
        publisher = start_program("publish_trades", nats_url, str(TOTAL), "--prefix", "k", "--assets", "ETH",
                                  stderr=subprocess.PIPE)
        victim, survivors = hubs[0], hubs[1:]
        wait_until(lambda: persisted(victim) > 0 and scalar("SELECT count(*) FROM trades") >= 5_000, timeout=120)
        victim_persisted = persisted(victim)
        victim.stop(signal.SIGKILL)
        stored_at_kill = scalar("SELECT count(*) FROM trades")

        _, errors = publisher.communicate(timeout=180)
        assert publisher.returncode == 0, errors
        wait_until(lambda: scalar("SELECT count(*) FROM trades") == TOTAL, timeout=120)
        assert scalar("SELECT count(DISTINCT event_id) FROM trades") == TOTAL
        assert stored_at_kill < TOTAL, "the kill came too late to prove anything"

        with engine.connect() as connection:
            rows: dict[str, int] = dict(connection.execute(text("SELECT event_id, id FROM trades")).all())
        assert set(rows) == {f"k-{i}" for i in range(TOTAL)}
        seen = [client.result(timeout=60) for client in clients]
        assert seen[0]["end"].startswith("closed")  # the victim's client lost its hub
        for saw in seen[1:]:
            missing = set(rows) - set(saw["seen"])
            assert not missing, f"a surviving client missed {len(missing)} trades ({saw['end']})"
            assert saw["seen"] == rows  # and each came with the id it was stored under

        # The work was shared: each survivor stored some trades, none stored them all, and
        # each one's client saw the others' (their announcements travel on core NATS).
        by_survivor = [persisted(hub) for hub in survivors]
        assert all(count > 0 for count in by_survivor), by_survivor
        assert sum(by_survivor) <= TOTAL - victim_persisted
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        for client in clients:
            if client.process.poll() is None:
                client.process.kill()
        codes = [hub.stop() for hub in hubs if hub.process.poll() is None]
        engine.dispose()
    assert codes == [0] * (INSTANCES - 1)


async def test_a_trade_is_announced_before_it_is_acked(hub: Hub, nc: Nats) -> None:
    # One subscription to everything keeps the order in which the server relayed the hub's
    # messages (an ack is a plain publish to $JS.ACK.<stream>.<consumer>...).
    relayed: list[str] = []

    async def note(msg: Msg) -> None:
        relayed.append(msg.subject)

    await nc.subscribe(">", cb=note)
    await publish_raw(nc, "trades.BTC", trade())
    await eventually(lambda: "hub.persisted.trades.BTC" in relayed
                     and any(s.startswith("$JS.ACK.HUB.trades.") for s in relayed), what="both")
    announced = relayed.index("hub.persisted.trades.BTC")
    acked = next(i for i, s in enumerate(relayed) if s.startswith("$JS.ACK.HUB.trades."))
    assert announced < acked, relayed


async def test_a_redelivered_trade_that_is_stored_is_announced_again(hub: Hub, nc: Nats) -> None:
    announcements = await nc.subscribe("hub.persisted.trades.>")
    payload = trade(event_id="replayed-1")
    await publish_raw(nc, "trades.BTC", payload)  # no Nats-Msg-Id: the stream keeps both copies
    first = orjson.loads((await announcements.next_msg(timeout=10)).data)
    await publish_raw(nc, "trades.BTC", payload)
    again = orjson.loads((await announcements.next_msg(timeout=10)).data)
    assert again == first  # the stored row, with its id
    stats = hub.app[CONSUMERS][0].stats
    await eventually(lambda: (stats.persisted, stats.duplicates) == (1, 1))


async def test_a_redelivered_backtest_that_is_stored_is_announced_again(hub: Hub, nc: Nats) -> None:
    announcements = await nc.subscribe("hub.persisted.backtests")
    await publish_raw(nc, "backtests.completed", backtest("bt-replayed"))
    first = orjson.loads((await announcements.next_msg(timeout=30)).data)
    await publish_raw(nc, "backtests.completed", backtest("bt-replayed"))
    again = orjson.loads((await announcements.next_msg(timeout=30)).data)
    assert again == first and first["event_id"] == "bt-replayed"
    assert len(list(hub.settings.logs_dir.glob("backtest_*.json"))) == 1
