"""Decision memory: past reasoning searched by words and by meaning, with each trade's outcome,
through the bus, the background worker, Chroma and the REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as Nats

from bus.replies import request
from core.decisions import DecisionPage, DecisionSearch, SimilarDecisions, SimilarRequest
from core.settings import Settings
from core.subjects import DECISION_SEARCH, DECISION_SIMILAR
from handlers.events.reasoning_worker import ReasoningWorker
from handlers.events.worker_pacing import Pacing
from handlers.http.keys import MEMORY
from storage.rag.reasoning_index import ReasoningIndex
from storage.sql import leases
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import upgrade
from storage.sql.reasoning_rows import text_of
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.hub_process import HubProcess, hub_env
from tests.support.payloads import insert_trade_rows, publish_raw, publish_trade
from tests.support.processes import main_py
from tests.support.waiting import eventually, wait_until
from tests.test_backtests import backtest

OVERSOLD = "RSI(14) printed 24 on the four-hour chart, deeply oversold; buying the bounce"
BREAKOUT = "Price broke out above the range high on twice the average volume"
FUNDING = "Perpetual funding turned sharply negative while open interest climbs: short squeeze setup"
NEWS = "Fading the exchange-listing headline; the pop looks overdone"
TICKER = "SOLUSDT reclaimed 142.5 after the liquidation wick"
# A paraphrase of OVERSOLD sharing none of its words: only the dense side can find it.
PARAPHRASE = "the oscillator is at an extreme low reading so I expect a relief rally"


async def indexed(hub: Hub, trades: int) -> bool:
    """Every one of TRADES stored, paired (the outcome filters need it) and searchable by meaning."""
    health = await (await hub.http.get("/api/health")).json()
    stored = (await (await hub.http.get(f"/api/trades?limit={trades}")).json())["trades"]
    return (len(stored) == trades and all(t["outcome"]["status"] is not None for t in stored)
            and health["reasoning"]["detail"]["trades_behind"] == 0)


async def search(hub: Hub, **params: Any) -> list[dict[str, Any]]:
    response = await hub.http.get("/api/trades/search", params={k: str(v) for k, v in params.items()})
    assert response.status == 200, await response.text()
    results: list[dict[str, Any]] = (await response.json())["results"]
    return results


@pytest.fixture
async def memory_hub(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub holding five themes of reasoning: a won oversold trade, the rest open."""
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url))
    plan = [("a", "BTC", "BUY", OVERSOLD, "00"), ("a", "BTC", "SELL", OVERSOLD, "01"),
            ("a", "ETH", "BUY", BREAKOUT, "02"), ("b", "BTC", "BUY", FUNDING, "03"),
            ("b", "ETH", "SELL", NEWS, "04"), ("b", "SOL", "BUY", TICKER, "05"),
            ("b", "BTC", "BUY", OVERSOLD, "06")]
    for source, asset, action, reasoning, minute in plan:
        price = 110.0 if action == "SELL" and asset == "BTC" else 100.0
        await publish_trade(nc, source=source, asset=asset, action=action, reasoning=reasoning,
                            price=price, quantity=1.0, timestamp=f"2024-05-01T12:{minute}:00Z",
                            event_id=f"memory-{minute}")
    await eventually(lambda: indexed(hub, len(plan)), timeout=60)
    yield hub
    await hub.stop()


async def test_a_paraphrase_with_no_shared_word_is_found_by_meaning(memory_hub: Hub) -> None:
    found = await search(memory_hub, q=PARAPHRASE, k=3)
    assert found[0]["reasoning"] == OVERSOLD
    assert {"score", "outcome", "kind"} <= found[0].keys() and found[0]["kind"] == "live"


async def test_an_exact_ticker_and_number_are_found_by_their_words(memory_hub: Hub) -> None:
    found = await search(memory_hub, q="SOLUSDT 142.5", k=1)
    assert found[0]["reasoning"] == TICKER


async def test_filters_narrow_the_results(memory_hub: Hub) -> None:
    by_source = await search(memory_hub, q=OVERSOLD, k=10, source="b")
    assert by_source and {t["source"] for t in by_source} == {"b"}
    sells = await search(memory_hub, q=OVERSOLD, k=10, action="SELL")
    assert [t["action"] for t in sells] == ["SELL"] * len(sells) and sells
    wins = await search(memory_hub, q=OVERSOLD, k=10, outcome="win")
    assert wins and all(t["outcome"]["realized_pnl"] > 0 for t in wins)
    opened = await search(memory_hub, q=OVERSOLD, k=10, outcome="open", asset="BTC")
    assert opened and all(t["outcome"]["status"] == "open" and t["asset"] == "BTC" for t in opened)
    assert await search(memory_hub, q=OVERSOLD, kind="backtest") == []


async def test_a_filter_the_best_texts_miss_finds_the_best_text_that_matches(memory_hub: Hub) -> None:
    """Search reads candidate texts in slices from the top (K texts first): when the first slice
    holds no trade the filter lets through, the next slices are read."""
    found = await search(memory_hub, q=OVERSOLD, k=1, asset="SOL")  # only TICKER was traded on SOL
    assert [(t["asset"], t["reasoning"]) for t in found] == [("SOL", TICKER)]
    two = await search(memory_hub, q=OVERSOLD, k=2, source="a", asset="ETH")
    assert [t["reasoning"] for t in two] == [BREAKOUT]


async def test_similar_excludes_the_trade_and_everything_after_it(memory_hub: Hub) -> None:
    latest = (await search(memory_hub, q=OVERSOLD, k=1, source="b"))[0]  # minute 06
    response = await memory_hub.http.get(f"/api/trades/{latest['id']}/similar", params={"scope": "all"})
    answer = await response.json()
    assert response.status == 200, answer
    ids = [t["id"] for t in answer["results"]]
    assert latest["id"] not in ids and answer["results"][0]["reasoning"] == OVERSOLD
    assert all(t["timestamp"] < latest["timestamp"] for t in answer["results"])
    summary = answer["summary"]
    assert summary["n"] == len(ids) and summary["closed"] >= 1 and summary["wins"] >= 1
    own = await (await memory_hub.http.get(f"/api/trades/{latest['id']}/similar")).json()
    assert {t["source"] for t in own["results"]} <= {"b"}
    first = (await search(memory_hub, q=OVERSOLD, k=10, source="a", action="BUY"))[0]  # minute 00
    earliest = await (await memory_hub.http.get(f"/api/trades/{first['id']}/similar?scope=all")).json()
    assert earliest["results"] == [] and earliest["summary"]["win_rate"] is None


async def test_recall_answers_a_draft_before_it_is_published(memory_hub: Hub) -> None:
    response = await memory_hub.http.post("/api/trades/recall", json={"reasoning": PARAPHRASE, "k": 3})
    answer = await response.json()
    assert response.status == 200, answer
    assert answer["results"][0]["reasoning"] == OVERSOLD and answer["summary"]["n"] == 3
    by_get = await (await memory_hub.http.get("/api/trades/recall", params={
        "reasoning": PARAPHRASE, "k": "3", "asset": "BTC"})).json()
    assert by_get["results"] and {t["asset"] for t in by_get["results"]} == {"BTC"}


async def test_the_same_questions_over_nats(memory_hub: Hub, nc: Nats) -> None:
    page = DecisionPage.model_validate(
        await request(nc, DECISION_SEARCH, DecisionSearch(q="SOLUSDT 142.5", k=1), timeout=10))
    assert page.results[0].reasoning == TICKER
    similar = SimilarDecisions.model_validate(await request(
        nc, DECISION_SIMILAR, SimilarRequest(trade_id=page.results[0].id, scope="all"), timeout=10))
    assert all(t.id != page.results[0].id for t in similar.results)
    refused = await request(nc, DECISION_SIMILAR, SimilarRequest(trade_id=999_999), timeout=10)
    assert refused["error"] == "not_found"


@pytest.mark.parametrize(("path", "status"), [
    ("/api/trades/search", 422),  # no q
    ("/api/trades/search?q=rsi&k=0", 422),
    ("/api/trades/search?q=rsi&outcome=maybe", 422),
    ("/api/trades/search?q=rsi&kind=paper", 422),
    ("/api/trades/search?q=rsi&since=yesterday", 422),
    ("/api/trades/999999/similar", 404),
    ("/api/trades/1/similar?scope=everyone", 422),
    ("/api/trades/recall?k=3", 422),  # no reasoning
])
async def test_bad_parameters_answer_4xx_with_a_json_body(hub: Hub, path: str, status: int) -> None:
    response = await hub.http.get(path)
    assert response.status == status and "error" in await response.json()


async def test_a_bad_recall_body_is_refused(hub: Hub) -> None:
    for body in ({"reasoning": ""}, {"reasoning": "x" * 20_001}, {"reasoning": "rsi", "k": 500}, {"k": 3}):
        response = await hub.http.post("/api/trades/recall", json=body)
        assert response.status == 422 and "error" in await response.json()


def templated(count: int, texts: int, prefix: str) -> list[dict[str, Any]]:
    """COUNT trades repeating TEXTS distinct reasonings, as bots repeat their templates."""
    return [{"event_id": f"{prefix}-{i}", "reasoning": f"{prefix} template {i % texts}: fading the move",
             "source": f"bot-{i % 3}", "timestamp": f"2024-05-02T10:{i // 60 % 60:02d}:{i % 60:02d}Z"}
            for i in range(count)]


async def test_a_restart_resumes_from_the_checkpoint_and_embeds_each_text_once(
    database_url: str, nc: Nats, tmp_path: Path, nats_url: str
) -> None:
    settings = hub_settings(tmp_path, nats_url, database_url)
    first = await start_hub(settings)
    try:
        for event in templated(60, 12, "first"):
            await publish_trade(nc, **event)
        await eventually(lambda: indexed(first, 60), timeout=60, what="first batch indexed")
        assert first.app[MEMORY].worker.index.embedded == 12  # 60 trades, 12 distinct texts
    finally:
        await first.stop()
    again = await start_hub(settings)
    try:
        for event in templated(60, 12, "first")[:10] + templated(30, 5, "second"):
            await publish_trade(nc, **event)  # ten replays, thirty new trades with five new texts
        await eventually(lambda: indexed(again, 90), timeout=60, what="second batch indexed")
        # Each distinct text embedded once in all: the restart embedded only the five new ones.
        assert first.app[MEMORY].worker.index.embedded + again.app[MEMORY].worker.index.embedded == 17
        found = await search(again, q="first template 3: fading the move", k=5)
        assert found[0]["reasoning"] == "first template 3: fading the move"
    finally:
        await again.stop()


async def test_another_precision_embeds_into_its_own_collection_not_among_the_old_vectors(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    settings = hub_settings(tmp_path, nats_url, sqlite_url)
    plan = [("float32", "reasoning", OVERSOLD, 1), ("int8", "reasoning-int8-w7", BREAKOUT, 2)]
    for trades, (precision, collection, reasoning, embedded) in enumerate(plan, start=1):
        hub = await start_hub(settings.model_copy(update={"embedding_precision": precision}))
        try:
            await publish_trade(nc, event_id=f"switch-{precision}", reasoning=reasoning)
            await eventually(lambda: indexed(hub, trades), timeout=60, what=f"{precision} indexed")
            index = hub.app[MEMORY].worker.index
            assert (index.collection, index.embedder.precision) == (collection, precision)
            # int8 starts from its own checkpoint: the text float32 embedded is embedded again.
            assert index.embedded == embedded
            assert (await search(hub, q=PARAPHRASE, k=1))[0]["reasoning"] == OVERSOLD
        finally:
            await hub.stop()


async def test_two_instances_never_both_embed_a_text_and_both_search_it(
    nc: Nats, tmp_path: Path, nats_url: str
) -> None:
    # One database and one Chroma store (in one process, as a Chroma server would be for two).
    database = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    hubs = [await start_hub(hub_settings(tmp_path, nats_url, database)) for _ in "ab"]
    try:
        for event in templated(200, 40, "pair") + [{"event_id": "pair-x", "reasoning": OVERSOLD}]:
            await publish_trade(nc, **event)
        await eventually(lambda: indexed(hubs[0], 201), timeout=90, what="indexed")
        counts = [hub.app[MEMORY].worker.index.embedded for hub in hubs]
        assert sum(counts) == 41 and 0 in counts, counts  # the lease holder did it all
        for hub in hubs:
            assert (await search(hub, q=PARAPHRASE, k=1))[0]["reasoning"] == OVERSOLD
    finally:
        for hub in hubs:
            await hub.stop()


LONG = "Funding and open interest diverge. " * 570  # 20,000 characters less a few
ODD = {"long": LONG[:20_000], "empty": "", "greek": "Η αγορά υπερπουλήθηκε μετά την ανακοίνωση",
       "japanese": "日銀の発表後に円が急落、買い戻しを狙う", "emoji": "🚀 to the moon, RSI 31"}


async def test_long_empty_and_non_latin_reasoning(hub: Hub, nc: Nats) -> None:
    for name, reasoning in ODD.items():
        await publish_trade(nc, event_id=f"odd-{name}", reasoning=reasoning)
    await eventually(lambda: indexed(hub, len(ODD)), timeout=60)
    for name in ("greek", "japanese", "emoji"):
        assert (await search(hub, q=ODD[name], k=1))[0]["reasoning"] == ODD[name], name
    assert (await search(hub, q="funding open interest diverge", k=1))[0]["reasoning"] == ODD["long"]
    empty = (await (await hub.http.get("/api/trades?limit=10")).json())["trades"]
    blank = next(t for t in empty if t["reasoning"] == "")
    similar = await (await hub.http.get(f"/api/trades/{blank['id']}/similar")).json()
    assert similar["results"] == [] and similar["summary"]["n"] == 0
    long_draft = await hub.http.post("/api/trades/recall", json={"reasoning": ODD["long"], "k": 1})
    assert long_draft.status == 200 and (await long_draft.json())["results"][0]["reasoning"] == ODD["long"]


async def test_backtest_trades_are_searchable_and_marked(hub: Hub, nc: Nats) -> None:
    await publish_raw(nc, "backtests.completed", backtest("memory-bt"))
    await publish_trade(nc, event_id="live-rsi", reasoning="RSI 27: oversold")

    async def both() -> bool:  # the live and the backtest trade that said it, first
        top = await search(hub, q="RSI 27 oversold", k=2)
        return [t["reasoning"] for t in top] == ["RSI 27: oversold"] * 2

    async def exit_first() -> bool:  # until its vector is in, the entry may tie with the exit
        return (await search(hub, q="RSI 72 overbought", kind="backtest", k=1))[0]["reasoning"] == "RSI 72: overbought"

    await eventually(both, timeout=60)
    await eventually(exit_first, timeout=60)
    kinds = {t["kind"]: t for t in await search(hub, q="RSI 27 oversold", k=2)}
    assert kinds["backtest"]["backtest_id"] is not None and kinds["backtest"]["source"] is None
    tested = await search(hub, q="RSI 72 overbought", kind="backtest", k=1)
    assert tested[0]["outcome"] == {"status": "exit", "realized_pnl": pytest.approx(97.0)}
    assert {t["kind"] for t in await search(hub, q="RSI 27 oversold", kind="live")} == {"live"}


def test_recall_prints_a_table_through_the_hub_and_from_a_stopped_hubs_store(tmp_path: Path) -> None:
    hub = HubProcess(hub_env(tmp_path))
    try:
        for action, price in (("BUY", "100"), ("SELL", "120")):  # timed by the stream, in order
            published = hub.cli("publish-trade", "--asset", "BTC", "--action", action, "--price", price,
                                "--quantity", "1", "--confidence", "70", "--source", "bot7",
                                "--reasoning", OVERSOLD)
            assert published.returncode == 0, published.stderr
        wait_until(lambda: hub.get("/api/health")["reasoning"]["detail"]["trades_behind"] == 0
                   and len(hub.get("/api/trades")["trades"]) == 2, timeout=60)
        through_hub = hub.cli("recall", PARAPHRASE, "--source", "bot7", "-k", "5")
    finally:
        assert hub.stop() == 0
    assert through_hub.returncode == 0, through_hub.stderr
    assert "2 similar past decisions" in through_hub.stdout and "bot7" in through_hub.stdout
    assert "2 closed: won 100% (2)" in through_hub.stdout and "mean PnL 20.00" in through_hub.stdout
    local = main_py("recall", PARAPHRASE, "--source", "bot7", "-k", "5", env=hub.env, timeout=90)
    assert local.returncode == 0 and local.stdout == through_hub.stdout, local.stderr


async def test_health_and_metrics_report_the_index_lag(memory_hub: Hub) -> None:
    health = await (await memory_hub.http.get("/api/health")).json()
    assert health["reasoning"]["detail"]["trades_behind"] == 0 and health["reasoning"]["detail"]["embedded"] == 5
    metrics = await (await memory_hub.http.get("/metrics")).text()
    assert "hub_reasoning_trades_behind 0.0" in metrics and "hub_reasoning_seconds_behind 0.0" in metrics


@pytest.mark.parametrize("sweep_every", [0.0, float("inf")])
async def test_a_trade_committed_below_the_checkpoint_is_mapped_by_the_sweep(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep_every: float
) -> None:
    monkeypatch.setattr(leases, "GAP_WAIT", 0.0)  # id 3 is taken for a hole at once
    engine = create_hub_engine(sqlite_url)
    await upgrade(engine)
    sessions = async_sessions(engine)

    async def store(*ids: int) -> None:
        await insert_trade_rows(sessions, ids, reasoning=lambda i: f"{ODD['greek']} {i}")

    index = ReasoningIndex(Settings(data_dir=tmp_path / "data"))
    worker = ReasoningWorker(sessions, index, pacing=Pacing(sweep_every=sweep_every))
    try:
        await store(1, 2, 4, 5)
        for _ in range(3):
            await worker.run_pass()
        await store(3)  # committed after the checkpoint passed it
        for _ in range(3):
            await worker.run_pass()
        async with sessions() as session:
            assert (await text_of(session, "live", 3) is not None) is (sweep_every == 0.0)
            assert await text_of(session, "live", 5) is not None
    finally:
        index.close()
        await engine.dispose()
