"""Live outcomes: FIFO pairing per (source, strategy, asset), through the bus to the REST answers,
whatever order trades arrive in and however many hubs store them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as Nats

from core.outcomes import GroupState, LiveFill, pair_all, pair_into
from handlers.events.outcome_worker import OutcomeWorker
from handlers.events.worker_pacing import Pacing
from storage.sql import leases
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import upgrade
from storage.sql.outcome_rows import outcomes_of
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.payloads import insert_trade_rows, publish_raw, publish_trade
from tests.support.postgres import empty_database
from tests.support.waiting import eventually

# (minute, action, price, quantity, fee, confidence): a long built in two buys, closed in two
# sells (the second flips to a short), then the short covered.
SCRIPT = [
    (0, "BUY", 100.0, 1.0, 1.0, 80),
    (1, "BUY", 110.0, 1.0, 1.0, 60),
    (2, "SELL", 120.0, 1.5, 1.5, 70),   # closes 1 @100 and 0.5 @110
    (3, "SELL", 130.0, 1.5, 3.0, 40),   # closes 0.5 @110, opens a 1.0 short @130
    (4, "BUY", 125.0, 1.0, 1.0, 55),    # covers the short
]
# Hand-checked, fees pro rata:
# exit 2: (120-100)*1 + (120-110)*0.5 = 25 gross; fees: entry 1 + entry 0.5 + exit 1.5 = 3 -> 22
# exit 3: (130-110)*0.5 = 10 gross; fees: entry 0.5 + a third of the exit fee 1.0 -> 8.5
#         (it closes 0.5 of its 1.5; the other 1.0 opens a short carrying 2.0 of entry fee)
# exit 4: (130-125)*1 = 5 gross; fees: the short's entry fee 2.0 + exit 1.0 -> 2.0
# entry 0: 20 - 1 - 1.0 (its share of exit 2's fee) = 18
# entry 1: (10*0.5 - 0.5 - 0.5) + (10 - 0.5 - 1.0) = 12.5
EXIT_PNL = {2: 22.0, 3: 8.5, 4: 2.0}
ENTRY_PNL = {0: 18.0, 1: 12.5}


def fills(order: list[int] | None = None) -> list[LiveFill]:
    chosen = order if order is not None else list(range(len(SCRIPT)))
    return [LiveFill(i + 1, 60.0 * SCRIPT[i][0], *SCRIPT[i][1:]) for i in chosen]


def test_hand_checked_fifo_with_partial_closes_a_flip_and_fees() -> None:
    state, outcomes = pair_all(fills())
    by_trade = {o.trade_id - 1: o for o in outcomes}
    for index, pnl in EXIT_PNL.items():
        assert by_trade[index].status == "exit" and by_trade[index].realized_pnl == pytest.approx(pnl)
    for index, pnl in ENTRY_PNL.items():
        assert by_trade[index].status == "closed" and by_trade[index].realized_pnl == pytest.approx(pnl)
    flip = by_trade[3]
    assert flip.opened == pytest.approx(1.0) and flip.remaining == 0.0  # its short was covered
    assert flip.entry_pnl == pytest.approx(5 - 2.0 - 1.0)
    assert state.book.side == 0 and state.sums.trades == 3
    assert state.sums.win_total == pytest.approx(sum(EXIT_PNL.values()))
    assert state.fees == pytest.approx(7.5)


def test_incremental_pairing_equals_pairing_all_sorted() -> None:
    _, reference = pair_all(fills())
    expected = {o.trade_id: (o.status, o.realized_pnl) for o in reference}
    for seed in range(5):
        order = list(range(len(SCRIPT)))
        random.Random(seed).shuffle(order)
        # Only in-order batches continue a book; a shuffled arrival re-pairs from the start.
        _, again = pair_all(fills(order))
        assert {o.trade_id: (o.status, o.realized_pnl) for o in again} == expected
    state, first = GroupState(), pair_into(GroupState(), [])
    assert first == []
    seen: dict[int, Any] = {}
    for chunk in ([0, 1], [2], [3, 4]):
        for o in pair_into(state, fills(chunk)):
            seen[o.trade_id] = (o.status, o.realized_pnl)
    assert seen == expected


def published(script_index: int, source: str, **extra: Any) -> dict[str, Any]:
    minute, action, price, quantity, fee, confidence = SCRIPT[script_index]
    return {"event_id": f"{source}-{script_index}", "timestamp": f"2024-05-01T12:{minute:02d}:00Z",
            "asset": "BTC", "action": action, "price": price, "quantity": quantity, "fee": fee,
            "confidence": confidence, "source": source, "strategy": "swing", **extra}


async def paired(hub: Hub, total: int) -> bool:
    trades = (await (await hub.http.get("/api/trades?limit=500")).json())["trades"]
    return len(trades) == total and all(t["outcome"]["status"] for t in trades)


async def answers(hub: Hub) -> dict[str, Any]:
    async def get(path: str) -> Any:
        response = await hub.http.get(path)
        assert response.status == 200, await response.text()
        return await response.json()

    trades = (await get("/api/trades?limit=500"))["trades"]
    return {
        "outcomes": sorted((t["event_id"], t["outcome"]["status"], t["outcome"]["realized_pnl"])
                           for t in trades),
        "performance": await get("/api/performance"),
        "by_asset": await get("/api/performance?group_by=source,strategy,asset"),
        "positions": await get("/api/positions"),
        "calibration": await get("/api/calibration?source=bot-a"),
    }


async def test_outcomes_through_the_bus_to_the_rest_answers(hub: Hub, nc: Nats) -> None:
    for index in range(len(SCRIPT)):
        await publish_trade(nc, **published(index, "bot-a"))
    await publish_trade(nc, **published(0, "bot-b"))  # bot-b stays long
    await eventually(lambda: paired(hub, len(SCRIPT) + 1), what="every trade paired")
    got = await answers(hub)
    outcome = {event_id: (status, pnl) for event_id, status, pnl in got["outcomes"]}
    assert outcome["bot-a-2"] == ("exit", pytest.approx(22.0))
    assert outcome["bot-a-0"] == ("closed", pytest.approx(18.0))
    assert outcome["bot-b-0"] == ("open", None)
    [a, b] = got["performance"]["groups"]
    assert (a["source"], a["exits"], a["realized_pnl"]) == ("bot-a", 3, pytest.approx(32.5))
    assert a["win_rate"] == 1.0 and a["profit_factor"] is None and a["open_positions"] == 0
    assert (b["source"], b["exits"], b["open_positions"], b["fees"]) == ("bot-b", 0, 1, 1.0)
    [position] = got["positions"]["positions"]
    assert position == {"source": "bot-b", "strategy": "swing", "asset": "BTC", "side": "long",
                        "quantity": 1.0, "avg_entry_price": 100.0,
                        "opened_at": "2024-05-01T12:00:00Z", "cost_basis": 100.0}
    calibration = got["calibration"]
    assert calibration["n"] == 3 and calibration["pending"] == 0  # entries 0, 1 and the flip
    assert calibration["spearman"]["rho"] is None and "too few" in calibration["verdict"]


async def test_shuffled_twice_and_through_two_hubs_gives_the_same_answers(
    database_url: str, nc: Nats, tmp_path: Path, nats_url: str
) -> None:
    events = [published(i % len(SCRIPT), f"bot-{i // len(SCRIPT)}") for i in range(4 * len(SCRIPT))]
    reference = await start_hub(hub_settings(tmp_path / "ref", nats_url, database_url))
    try:
        for event in events:
            await publish_trade(nc, **event)
        await eventually(lambda: paired(reference, len(events)), timeout=30, what="paired in order")
        expected = await answers(reference)
    finally:
        await reference.stop()
    for stream in await nc.jetstream().streams_info():
        await nc.jetstream().delete_stream(str(stream.config.name))
    if database_url.startswith("postgresql"):
        await empty_database(database_url)
        shared = database_url
    else:
        shared = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    hubs = [await start_hub(hub_settings(tmp_path / name, nats_url, shared)) for name in "ab"]
    try:
        shuffled = events[:]
        random.Random(7).shuffle(shuffled)
        for event in shuffled + shuffled[::3]:  # and again: redelivered duplicates
            await publish_trade(nc, **event)
        await eventually(lambda: paired(hubs[0], len(events)), timeout=60, what="paired shuffled")
        assert await answers(hubs[0]) == expected
        assert await answers(hubs[1]) == expected
    finally:
        for running in hubs:
            await running.stop()


@pytest.mark.parametrize("path", [
    "/api/performance?group_by=venue", "/api/performance?since=yesterday",
    "/api/calibration?bins=1", "/api/calibration?bins=21", "/api/positions?side=long",
    "/api/performance/pnl?interval=1w", "/api/strategies/x?backtest=0",
])
async def test_bad_query_parameters_answer_4xx_with_json(hub: Hub, path: str) -> None:
    response = await hub.http.get(path)
    assert 400 <= response.status < 500
    assert (await response.json())["error"]


def round_trips(source: str, wins: list[tuple[float, bool]]) -> list[dict[str, Any]]:
    """A BUY at 100 with each confidence, then a SELL a minute later at 101 (win) or 99."""
    events = []
    for i, (confidence, win) in enumerate(wins):
        for leg, (action, price) in enumerate((("BUY", 100.0), ("SELL", 101.0 if win else 99.0))):
            events.append({"event_id": f"{source}-{i}-{leg}", "asset": "ETH", "action": action,
                           "timestamp": f"2024-06-{1 + i // 600:02d}T{i // 25 % 24:02d}:{i % 25 * 2 + leg:02d}:00Z",
                           "price": price, "quantity": 1.0, "confidence": confidence,
                           "source": source, "strategy": "scalp"})
    return events


async def test_calibration_tells_a_predictive_confidence_from_noise(hub: Hub, nc: Nats) -> None:
    rng = random.Random(3)
    confidences = [rng.uniform(0, 100) for _ in range(80)]
    sharp = [(c, rng.random() < c / 100) for c in confidences]  # P(win) = confidence
    noise = [(c, rng.random() < 0.5) for c in confidences]
    for event in round_trips("sharp", sharp) + round_trips("noise", noise):
        await publish_trade(nc, **event)
    await eventually(lambda: paired(hub, 320), timeout=30, what="320 trades paired")

    async def calibration(source: str) -> Any:
        return await (await hub.http.get(f"/api/calibration?source={source}&bins=5")).json()

    predictive, random_ = await calibration("sharp"), await calibration("noise")
    assert predictive["n"] == 80 and predictive["pending"] == 0 and len(predictive["bins"]) == 5
    assert predictive["spearman"]["rho"] > 0.3 and predictive["spearman"]["p_value"] < 0.01
    assert predictive["verdict"].startswith("higher confidence wins more often")
    assert random_["verdict"].startswith("no evidence that confidence predicts outcome")
    assert predictive["brier"]["score"] < random_["brier"]["score"]
    assert sum(b["n"] for b in predictive["bins"]) == 80
    assert sum(b["wins"] for b in predictive["bins"]) == sum(win for _, win in sharp)


async def test_a_backtest_beside_its_live_strategy(hub: Hub, nc: Nats) -> None:
    from tests.test_backtests import backtest

    await publish_raw(nc, "backtests.completed", backtest())
    for index in range(len(SCRIPT)):
        await publish_trade(nc, **published(index, "live-bot", strategy="rsi_reversion"))
    await eventually(lambda: paired(hub, len(SCRIPT)), what="live trades paired")

    async def backtest_stored() -> bool:
        return (await hub.http.get("/api/backtests/1/calibration")).status == 200

    await eventually(backtest_stored, what="the backtest stored")
    tested = await (await hub.http.get("/api/backtests/1/calibration")).json()
    assert (tested["n"], tested["pending"]) == (1, 1)  # BTC's entry closed; ETH's half open
    comparison = await (await hub.http.get("/api/strategies/rsi_reversion")).json()
    assert comparison["backtest_id"] == 1
    assert comparison["backtest"]["metrics"]["trades"] == 2 and comparison["live"]["metrics"]["trades"] == 3
    assert comparison["differences"]["win_rate"] == pytest.approx(1.0 - 0.5)
    assert comparison["differences"]["expectancy"] == pytest.approx(32.5 / 3 - 72 / 2)
    missing = await hub.http.get("/api/strategies/rsi_reversion?backtest=99")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"


async def test_an_exit_announces_the_entry_it_closes(hub: Hub, nc: Nats) -> None:
    ws = await hub.http.ws_connect("/ws")
    await ws.send_json({"subscribe": {"kinds": ["trades", "outcomes"]}})
    await ws.receive_json(timeout=5)
    await publish_trade(nc, **published(0, "ws-bot"))
    seen: dict[str, Any] = {}
    while "outcomes" not in seen:
        for event in (await ws.receive_json(timeout=10))["events"]:
            seen.setdefault(event["kind"], event["data"])
    assert seen["trades"]["outcome"] == {"status": None, "realized_pnl": None}  # not paired yet
    assert seen["outcomes"]["outcome"] == {"status": "open", "realized_pnl": None}
    entry_id = seen["outcomes"]["trade_id"]
    await publish_trade(nc, **{**published(2, "ws-bot"), "quantity": 1.0})
    closed: dict[int, Any] = {}
    while entry_id not in closed:
        for event in (await ws.receive_json(timeout=10))["events"]:
            if event["kind"] == "outcomes":
                closed[event["data"]["trade_id"]] = event["data"]["outcome"]
    assert closed[entry_id] == {"status": "closed", "realized_pnl": pytest.approx(20 - 1 - 1.5)}
    await ws.close()


def test_performance_and_calibration_print_as_tables(tmp_path: Path) -> None:
    from tests.support.hub_process import hub_env
    from tests.support.processes import main_py

    env = hub_env(tmp_path)
    empty = main_py("performance", env=env)
    assert empty.returncode == 0 and "no live trades paired yet" in empty.stdout, empty.stderr
    table = main_py("calibration", "--source", "nobody", "--bins", "4", env=env)
    assert table.returncode == 0, table.stderr
    assert "75–100" in table.stdout and "too few closed decisions" in table.stdout
    bad = main_py("calibration", "--bins", "50", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --bins must be less than or equal to 20")


async def test_bots_ask_the_same_questions_over_nats(hub: Hub, nc: Nats) -> None:
    for index in range(len(SCRIPT)):
        await publish_trade(nc, **published(index, "nats-bot"))
    await eventually(lambda: paired(hub, len(SCRIPT)), what="paired")
    for subject, path, body in [
        ("hub.query.performance", "/api/performance?source=nats-bot", {"source": "nats-bot"}),
        ("hub.query.positions", "/api/positions", {}),
        ("hub.query.pnl", "/api/performance/pnl?interval=1h", {"interval": "1h"}),
        ("hub.query.calibration", "/api/calibration?source=nats-bot&bins=4",
         {"source": "nats-bot", "bins": 4}),
    ]:
        reply = await nc.request(subject, orjson.dumps(body), timeout=5)
        assert orjson.loads(reply.data) == await (await hub.http.get(path)).json(), subject
    refused = orjson.loads((await nc.request("hub.query.calibration", b'{"bins": 99}', timeout=5)).data)
    assert refused["error"] == "invalid_request" and "bins" in refused["message"]


async def test_a_wrong_method_says_which_ones_are_allowed(hub: Hub) -> None:
    response = await hub.http.post("/api/performance")
    assert response.status == 405 and set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}
    assert (await response.json())["error"] == "method_not_allowed"


@pytest.mark.parametrize("sweep_every", [0.0, float("inf")])
async def test_a_trade_committed_below_the_checkpoint_is_paired_by_the_sweep(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, sweep_every: float
) -> None:
    # Id 3 is given out but committed only after the checkpoint passed it (a transaction slower
    # than GAP_WAIT): the passes that follow the checkpoint never look below it again.
    monkeypatch.setattr(leases, "GAP_WAIT", 0.0)
    engine = create_hub_engine(sqlite_url)
    await upgrade(engine)
    sessions = async_sessions(engine)

    async def store(*ids: int) -> None:
        await insert_trade_rows(sessions, ids, action=lambda i: "BUY" if i % 2 else "SELL",
                                price=lambda i: 100.0 + i)

    async def no_publish(subject: str, payload: bytes) -> None:
        return None

    worker = OutcomeWorker(sessions, no_publish, pacing=Pacing(sweep_every=sweep_every))
    try:
        await store(1, 2, 4, 5)
        while await worker.run_pass():
            pass
        assert worker.checkpoint == 5
        await store(3)
        for _ in range(3):
            await worker.run_pass()
        async with sessions() as session:
            found = await outcomes_of(session, [3])
        assert (3 in found) is (sweep_every == 0.0)
    finally:
        await engine.dispose()


async def test_outcomes_of_a_group_larger_than_a_statement_may_bind(database_url: str) -> None:
    # Re-pairing a 100,000-trade group reads every outcome of it: asyncpg binds at most 32,767.
    engine = create_hub_engine(database_url)
    try:
        await upgrade(engine)
        async with async_sessions(engine)() as session:
            assert await outcomes_of(session, list(range(1, 40_001))) == {}
    finally:
        await engine.dispose()
