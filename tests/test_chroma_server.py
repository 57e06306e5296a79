"""The knowledge base on a Chroma server (HUB_CHROMA_URL) instead of the embedded store.

The server is the real one: `chroma run` from the chromadb package, on a loopback port. The hub
passes its own vectors, so nothing here may touch Chroma's default (downloading) embedding model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as Nats

from bus.embedded import free_port
from core.settings import REPO_ROOT, Settings
from handlers.events.reasoning_worker import ReasoningWorker
from handlers.http.keys import MEMORY
from storage.rag.embedding import Embedder
from storage.rag.indexer import KnowledgeIndexer
from storage.rag.reasoning_index import ReasoningIndex
from storage.rag.vectors import collection_name
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import upgrade
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import insert_trade_rows, publish_trade
from tests.support.waiting import eventually, wait_until_indexed
from tests.test_knowledge import embedder, no_default_embedding_function  # noqa: F401  (fixtures)

SHIPPED = ["technical/rsi.md", "technical/macd.md", "risk/kelly-criterion.md"]


class ChromaServer:
    """`chroma run` on a free loopback port, storing in PATH."""

    def __init__(self, path: Path, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(path),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=output, stderr=subprocess.STDOUT)
        self.log = log

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server answers its heartbeat."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "chroma exited:\n" + self.log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise TimeoutError(f"no Chroma heartbeat at {self.url}")

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's own REST API in the default tenant and database (no client library)."""
        base = f"{self.url}/api/v2/tenants/default_tenant/databases/default_database"
        with urllib.request.urlopen(urllib.request.Request(base + path, method=method),
                                    timeout=10) as response:
            return orjson.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One Chroma server for the module."""
    folder = tmp_path_factory.mktemp("chroma-server")
    server = ChromaServer(folder / "db", folder / "chroma.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def chroma(chroma_server: ChromaServer) -> ChromaServer:
    """The server with no collections, so tests do not see each other's vectors."""
    for collection in chroma_server.api("/collections"):
        chroma_server.api(f"/collections/{collection['name']}", method="DELETE")
    return chroma_server


def copy_shipped(knowledge: Path) -> None:
    """A few of the repository's documents, in a knowledge folder of our own."""
    for name in SHIPPED:
        (knowledge / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "knowledge" / name, knowledge / name)


def server_counts(server: ChromaServer) -> dict[str, int]:
    """Vectors per collection, as the server itself reports them; checks each is cosine."""
    counts = {}
    for collection in server.api("/collections"):
        assert collection["configuration_json"]["hnsw"]["space"] == "cosine"
        counts[collection["name"]] = int(server.api(f"/collections/{collection['id']}/count"))
    return counts


def test_indexer_stores_and_searches_through_the_server(
    chroma: ChromaServer, tmp_path: Path, embedder: Embedder
) -> None:
    copy_shipped(tmp_path / "knowledge")
    settings = Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "knowledge",
                        chroma_url=chroma.url)
    indexer = KnowledgeIndexer(settings, embedder=embedder)
    try:
        stats = indexer.index_all()
        chunks = {d.domain: d.chunks for d in indexer.overview()}
        assert stats.chunks == chunks and chunks["technical"] > 2 and chunks["risk"] > 0

        # The vectors are in the server, and only there.
        assert server_counts(chroma) == {collection_name(d): n for d, n in chunks.items() if n}
        assert not (tmp_path / "data" / "chroma").exists()

        # Dense search reads nothing but the server's vectors; hybrid adds BM25 from SQLite.
        dense = indexer.search_dense("what RSI level means oversold", k=3)
        assert dense and dense[0].source == "technical/rsi.md" and 0 < dense[0].score <= 1
        hybrid = indexer.search("MACD signal line crossover", k=3)
        assert hybrid[0].source == "technical/macd.md"
        in_risk = indexer.search_dense("how large should a position be", domain="risk")
        assert in_risk and {h.domain for h in in_risk} == {"risk"}

        # A deleted file takes its vectors off the server.
        (tmp_path / "knowledge" / "technical" / "macd.md").unlink()
        indexer.index_all()
        left = {d.domain: d.chunks for d in indexer.overview()}["technical"]
        assert 0 < left < chunks["technical"]
        assert server_counts(chroma)[collection_name("technical")] == left
        assert all(h.source != "technical/macd.md"
                   for h in indexer.search_dense("MACD signal line crossover", domain="technical"))
    finally:
        indexer.close()


@pytest.fixture
async def chroma_hub(chroma: ChromaServer, tmp_path: Path, nats_url: str, sqlite_url: str,
                     nc: Nats) -> AsyncIterator[Hub]:
    """A hub with HUB_CHROMA_URL set, its knowledge folder indexed at start-up."""
    copy_shipped(tmp_path / "knowledge")
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url, chroma_url=chroma.url))

    await wait_until_indexed(hub, len(SHIPPED))  # the start-up index pass
    yield hub
    await hub.stop()


async def test_hub_searches_over_rest_through_the_server(chroma_hub: Hub, chroma: ChromaServer,
                                                          tmp_path: Path) -> None:
    overview = (await (await chroma_hub.http.get("/api/knowledge")).json())["domains"]
    chunks = {d["domain"]: d["chunks"] for d in overview}
    assert server_counts(chroma) == {collection_name(d): n for d, n in chunks.items() if n}
    assert not (tmp_path / "data" / "chroma").exists()

    response = await chroma_hub.http.get("/api/knowledge/search",
                                         params={"q": "what RSI level means oversold", "k": "3"})
    assert response.status == 200
    results = (await response.json())["results"]
    assert 0 < len(results) <= 3 and results[0]["source"] == "technical/rsi.md"


async def test_decision_memory_keeps_its_vectors_on_the_server(chroma_hub: Hub, chroma: ChromaServer,
                                                                nc: Nats, tmp_path: Path) -> None:
    reasonings = ["RSI(14) printed 24 on the four-hour chart, deeply oversold; buying the bounce",
                  "Price broke out above the range high on twice the average volume"]
    for number, reasoning in enumerate(reasonings):
        await publish_trade(nc, event_id=f"chroma-memory-{number}", reasoning=reasoning)

    async def embedded() -> bool:
        collection = chroma_hub.app[MEMORY].worker.index.collection  # "reasoning-int8-w7" by default
        return server_counts(chroma).get(collection) == len(reasonings)

    await eventually(embedded, timeout=60, what="the reasoning vectors on the server")
    response = await chroma_hub.http.get("/api/trades/search", params={
        "q": "the oscillator is at an extreme low reading so I expect a relief rally", "k": "1"})
    assert (await response.json())["results"][0]["reasoning"] == reasonings[0]
    assert not (tmp_path / "data" / "chroma").exists()


async def test_the_reasoning_worker_redoes_what_it_could_not_store_while_the_server_was_away(
    sqlite_url: str, tmp_path: Path, embedder: Embedder  # noqa: F811  (the fixture)
) -> None:
    engine = create_hub_engine(sqlite_url)
    await upgrade(engine)
    sessions = async_sessions(engine)
    server = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log")
    index = ReasoningIndex(Settings(data_dir=tmp_path / "data", chroma_url=server.url), embedder=embedder)
    worker = ReasoningWorker(sessions, index, embed_batch=10)

    async def passes() -> None:  # until the worker has nothing left to do, as Pacing runs them
        for _ in range(20):
            try:
                if not await worker.run_pass():
                    return
            except Exception:  # e.g. the client's first call after the server came back
                continue
        raise AssertionError("the worker never ran out of work")

    try:
        server.wait_ready()
        await insert_trade_rows(sessions, range(1, 11), reasoning=lambda i: f"funding squeeze number {i}")
        await passes()
        server.stop()
        await insert_trade_rows(sessions, range(11, 51), reasoning=lambda i: f"funding squeeze number {i}")
        await worker.run_pass()  # texts 11-20: their store fails in the background
        with pytest.raises(Exception):
            await worker.run_pass()  # texts 21-30 embedded (31-40 read beside), then the failure
        assert (await worker.lag()).trades_behind == 40
        server = ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log", port=server.port)
        server.wait_ready()
        await passes()  # from the checkpoint (after 10), not from what was read after 30
        assert (await worker.lag()).trades_behind == 0
        assert server_counts(server) == {index.collection: 50}
        assert index.embedded > 50  # what was embedded but never stored was embedded again
    finally:
        server.stop()
        index.close()
        await engine.dispose()
