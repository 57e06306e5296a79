"""The knowledge base through the hub: index events on NATS, search over REST and NATS."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client as Nats

from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import publish_raw
from tests.support.waiting import wait_until_indexed

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["technical/rsi.md", "technical/macd.md", "risk/kelly-criterion.md", "sentiment/fear-and-greed.md"]
KELLY_NOTE = ("Fractional Kelly in practice: we size every position at a quarter of the Kelly fraction, "
              "because the estimated edge of a crypto strategy is noisy and full Kelly overbets.")


@pytest.fixture
async def khub(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub whose knowledge folder holds a few of the shipped documents, indexed."""
    for name in SHIPPED:
        (tmp_path / "knowledge" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "knowledge" / name, tmp_path / "knowledge" / name)
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url))
    await wait_until_indexed(hub, len(SHIPPED))  # the start-up index pass
    yield hub
    await hub.stop()


async def test_overview_counts_files_and_chunks_per_domain(khub: Hub) -> None:
    domains = {d["domain"]: d for d in (await (await khub.http.get("/api/knowledge")).json())["domains"]}
    assert set(domains) == {"technical", "sentiment", "fundamental", "risk", "papers"}
    assert domains["technical"]["files"] == 2 and domains["risk"]["files"] == 1
    assert domains["papers"] == {"domain": "papers", "files": 0, "chunks": 0}
    assert domains["technical"]["chunks"] > 2


async def test_search_over_rest_ranks_the_right_document_first(khub: Hub) -> None:
    response = await khub.http.get("/api/knowledge/search", params={"q": "what RSI level means oversold", "k": "3"})
    assert response.status == 200
    results = (await response.json())["results"]
    assert 0 < len(results) <= 3 and results[0]["source"] == "technical/rsi.md"
    assert {"text", "source", "heading", "domain", "score"} <= set(results[0])
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    in_risk = await (await khub.http.get("/api/knowledge/search",
                                         params={"q": "how large should a position be", "domain": "risk"})).json()
    assert in_risk["results"] and {r["domain"] for r in in_risk["results"]} == {"risk"}


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "rsi", "domain": "astrology"}, {"q": "rsi", "k": "0"},
                                    {"q": "rsi", "colour": "red"}])
async def test_bad_search_parameters_get_422(khub: Hub, params: dict[str, str]) -> None:
    response = await khub.http.get("/api/knowledge/search", params=params)
    assert response.status == 422 and (await response.json())["error"] == "invalid_parameters"


async def test_search_over_nats_request_reply(khub: Hub, nc: Nats) -> None:
    reply = await nc.request("knowledge.search", orjson.dumps({"query": "MACD signal line crossover"}), timeout=30)
    results = orjson.loads(reply.data)["results"]
    assert len(results) == 5 and results[0]["source"] == "technical/macd.md"
    bad = orjson.loads((await nc.request("knowledge.search", b"{oops", timeout=10)).data)
    assert bad["error"] == "invalid_request"
    bad = orjson.loads((await nc.request("knowledge.search", orjson.dumps({"query": "x", "domain": "nope"}),
                                         timeout=10)).data)
    assert bad["error"] == "invalid_request" and "domain" in bad["message"]


async def test_index_event_writes_inline_documents_and_announces_stats(khub: Hub, nc: Nats) -> None:
    ws = await khub.http.ws_connect("/ws")
    await ws.send_json({"subscribe": {"kinds": ["knowledge"]}})
    await ws.receive_json(timeout=5)
    results = await nc.subscribe("hub.persisted.knowledge")
    await publish_raw(nc, "knowledge.index", {
        "event_id": "idx-1", "documents": [{"domain": "risk", "title": "Kelly sizing", "text": KELLY_NOTE}]})

    answer = orjson.loads((await results.next_msg(timeout=60)).data)
    assert answer["event_id"] == "idx-1" and answer["documents"]["added"] == 1
    written = khub.settings.knowledge_dir / "risk" / "kelly-sizing.md"
    assert written.is_file() and KELLY_NOTE in written.read_text()
    frame = await ws.receive_json(timeout=10)
    assert frame["events"][0]["kind"] == "knowledge" and frame["events"][0]["data"]["event_id"] == "idx-1"

    found = await (await khub.http.get("/api/knowledge/search",
                                       params={"q": "quarter of the Kelly fraction", "domain": "risk"})).json()
    assert found["results"][0]["source"] == "risk/kelly-sizing.md"
    await ws.close()


async def test_index_event_for_named_paths_and_nothing_changed(khub: Hub, nc: Nats) -> None:
    results = await nc.subscribe("hub.persisted.knowledge")
    await publish_raw(nc, "knowledge.index", {"event_id": "idx-2", "paths": ["technical/rsi.md"]})
    answer = orjson.loads((await results.next_msg(timeout=60)).data)
    assert answer["paths"]["unchanged"] == 1 and answer["paths"]["chunks_embedded"] == 0


@pytest.mark.parametrize(("event", "reason"), [
    ({"paths": ["../../etc/passwd"]}, "outside the knowledge folder"),
    ({"paths": ["/etc/passwd"]}, "outside the knowledge folder"),
    ({"domains": ["astrology"]}, "domains.0"),
])
async def test_unsafe_or_unknown_index_requests_are_dead_lettered(
    khub: Hub, nc: Nats, event: dict[str, object], reason: str
) -> None:
    dead = await nc.subscribe("hub.dlq.>")
    await publish_raw(nc, "knowledge.index", {"event_id": "idx-bad", **event})
    record = orjson.loads((await dead.next_msg(timeout=10)).data)
    assert record["subject"] == "knowledge.index" and reason in record["reason"]


async def test_every_instance_finds_a_document_another_instance_indexed(
    khub: Hub, nc: Nats, tmp_path: Path, nats_url: str
) -> None:
    """Two instances share the knowledge folder, each with its own Chroma and lexical index."""
    other = await start_hub(hub_settings(tmp_path / "other", nats_url, f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
                                         knowledge_dir=khub.settings.knowledge_dir))
    try:
        await wait_until_indexed(other, len(SHIPPED))  # the second instance's start-up pass
        await publish_raw(nc, "knowledge.index", {"event_id": "idx-shared", "documents": [
            {"domain": "risk", "title": "Kelly sizing", "text": KELLY_NOTE}]})
        for hub in (khub, other):  # one consumed the event; both have the document
            await wait_until_indexed(hub, len(SHIPPED) + 1)
            found = await (await hub.http.get("/api/knowledge/search", params={
                "q": "quarter of the Kelly fraction", "domain": "risk", "k": "1"})).json()
            assert found["results"][0]["source"] == "risk/kelly-sizing.md"
    finally:
        await other.stop()
