"""Backtest completions: metrics, report files, rows, the REST API, view-trades, import."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from nats.aio.client import Client as Nats
from sqlalchemy import select

from bus.publish import HubPublisher
from core.api import BacktestDetail
from core.downsample import minmax_indices
from core.events import BacktestCompleted
from handlers.events.backtest_completed import import_report
from handlers.http.keys import CONSUMERS
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.migrate import upgrade
from storage.sql.models import Backtest, BacktestTrade
from storage.reports import read_report, report_path
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.nats_server import NatsServer
from tests.support.processes import main_py
from tests.support.payloads import publish_raw
from tests.support.waiting import count_rows, eventually

DAY = 86_400


def backtest(event_id: str = "bt-1", **overrides: Any) -> dict[str, Any]:
    """Round trips: +100 (buy 1 @100, sell @200, fees 1+2), then -50 on 2 units short... see below."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    day = [start + timedelta(days=i) for i in range(6)]
    event = {
        "event_id": event_id, "strategy": "rsi_reversion", "parameters": {"rsi_period": 14, "oversold": 30},
        "start": day[0].isoformat(), "end": day[5].isoformat(), "initial_capital": 1000.0,
        "trades": [
            {"timestamp": day[1].isoformat(), "asset": "BTC", "action": "BUY", "price": 100.0,
             "quantity": 1.0, "fee": 1.0, "reasoning": "RSI 27: oversold", "confidence": 80},
            {"timestamp": day[2].isoformat(), "asset": "BTC", "action": "SELL", "price": 200.0,
             "quantity": 1.0, "fee": 2.0, "reasoning": "RSI 72: overbought", "confidence": 65},
            {"timestamp": day[3].isoformat(), "asset": "ETH", "action": "BUY", "price": 50.0,
             "quantity": 2.0, "reasoning": "breakout", "confidence": 55},
            {"timestamp": day[4].isoformat(), "asset": "ETH", "action": "SELL", "price": 25.0,
             "quantity": 1.0, "reasoning": "stop <b>hit</b>", "confidence": 90},
        ],
        "equity_curve": [{"timestamp": d.isoformat(), "value": v, "benchmark": b}
                         for d, v, b in zip(day, [1000, 1000, 1097, 1097, 1047, 1072],
                                            [40000, 40400, 40800, 40000, 41200, 42000])],
    }
    event.update(overrides)
    return event


async def stored(hub: Hub, n: int = 1) -> bool:
    return await count_rows(hub, Backtest) == n and (hub.settings.logs_dir / f"backtest_{n}.json").exists()


async def test_backtest_becomes_report_rows_api_and_websocket_frame(
    nc: Nats, tmp_path: Path, nats_url: str, database_url: str
) -> None:
    hub = await start_hub(hub_settings(tmp_path, nats_url, database_url))
    try:
        ws = await hub.http.ws_connect("/ws")
        await ws.send_json({"subscribe": {"kinds": ["backtests"]}})
        await ws.receive_json(timeout=5)
        await publish_raw(nc, "backtests.completed", backtest())
        frame = await ws.receive_json(timeout=10)
        [announced] = frame["events"]
        assert announced["kind"] == "backtests" and announced["data"]["strategy"] == "rsi_reversion"
        backtest_id = announced["data"]["id"]

        report = read_report(report_path(hub.settings.logs_dir, backtest_id))
        # FIFO PnL per exit, by hand: BTC (200-100)*1 - 1 - 2 = 97; ETH (25-50)*1 = -25 (1 left open).
        assert report["report_version"] == 2 and "trades" not in report and "reasons" not in report
        assert [t["pnl"] for t in report["trade_log"]] == [None, 97.0, None, -25.0]
        assert report["open_positions"] == [
            {"asset": "ETH", "side": "long", "quantity": 1.0, "avg_entry_price": 50.0,
             "opened_at": "2024-01-04T00:00:00Z"}]
        assert report["final_value"] == 1072.0 and report["metrics"]["trades"] == 2
        assert report["metrics"]["win_rate"] == 0.5 and report["metrics"]["total_fees"] == 3.0
        assert report["metrics"]["total_return"] == pytest.approx(0.072)
        assert report["metrics"]["benchmark_return"] == pytest.approx(0.05)
        assert report["conventions"]["periods_per_year"] == 365.0  # inferred from daily spacing

        detail = await (await hub.http.get(f"/api/backtests/{backtest_id}")).json()
        BacktestDetail.model_validate(detail)  # the documented schema
        assert detail["metrics"] == report["metrics"]
        assert detail["parameters"] == {"rsi_period": 14, "oversold": 30}
        assert detail["equity_curve"]["value"] == [1000, 1000, 1097, 1097, 1047, 1072]
        assert detail["equity_curve"]["timestamp"][0] == "2024-01-01T00:00:00Z"
        log = detail["trade_log"]
        assert [(t["asset"], t["action"], t["pnl"], t["confidence"]) for t in log] == [
            ("BTC", "BUY", None, 80.0), ("BTC", "SELL", 97.0, 65.0), ("ETH", "BUY", None, 55.0),
            ("ETH", "SELL", -25.0, 90.0)]
        assert log[3]["reasoning"] == "stop <b>hit</b>"

        file = await hub.http.get(f"/api/backtests/{backtest_id}/report")
        assert file.status == 200 and orjson.loads(await file.read()) == report
        assert await count_rows(hub, BacktestTrade) == 4
        await ws.close()
    finally:
        await hub.stop()


async def test_same_backtest_twice_is_stored_once(hub: Hub, nc: Nats) -> None:
    await publish_raw(nc, "backtests.completed", backtest())
    await eventually(lambda: stored(hub), what="the first copy stored")
    await publish_raw(nc, "backtests.completed", backtest())  # a re-publish, without Nats-Msg-Id
    await eventually(lambda: hub.app[CONSUMERS][1].stats.duplicates == 1)
    assert await count_rows(hub, Backtest) == 1 and await count_rows(hub, BacktestTrade) == 4
    assert sorted(p.name for p in hub.settings.logs_dir.iterdir()) == ["backtest_1.json"]


async def test_crash_between_commit_and_report_is_completed_by_redelivery(hub: Hub, nc: Nats) -> None:
    await publish_raw(nc, "backtests.completed", backtest())
    await eventually(lambda: stored(hub))
    path = report_path(hub.settings.logs_dir, 1)
    written = read_report(path)
    path.unlink()  # as if the hub died after the commit, before the report was written
    await publish_raw(nc, "backtests.completed", backtest())  # the redelivery
    await eventually(lambda: path.exists(), what="the report written on redelivery")
    assert read_report(path) == written and await count_rows(hub, Backtest) == 1



async def test_report_round_trip_gives_identical_rows(tmp_path: Path, database_url: str) -> None:
    first = tmp_path / "first.db"
    source = create_hub_engine(f"sqlite+aiosqlite:///{first}")
    await upgrade(source)
    from handlers.events.backtest_completed import persist_backtest

    event = BacktestCompleted.model_validate(backtest(metrics={"sharpe": 1.5}, final_value=1072.0))
    original = await persist_backtest(async_sessions(source), tmp_path / "logs", event)
    assert original is not None
    report_file = report_path(tmp_path / "logs", original.id)

    target = create_hub_engine(database_url)
    await upgrade(target)
    imported = await import_report(async_sessions(target), tmp_path / "logs2", report_file)
    assert imported is not None and imported.id == original.id
    assert await import_report(async_sessions(target), tmp_path / "logs2", report_file) is None

    async def rows(engine: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with async_sessions(engine)() as session:
            backtests = [dict(r) for r in (await session.execute(select(Backtest.__table__))).mappings()]
            trades = [dict(r) for r in (await session.execute(
                select(BacktestTrade.__table__).order_by(BacktestTrade.id))).mappings()]
        return backtests, trades

    assert await rows(target) == await rows(source)
    assert read_report(report_path(tmp_path / "logs2", original.id)) == read_report(report_file)
    await source.dispose()
    await target.dispose()


async def test_reports_in_logs_are_imported_when_the_hub_starts(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url))
    await publish_raw(nc, "backtests.completed", backtest())
    await eventually(lambda: stored(hub))
    await hub.stop()
    (tmp_path / "hub.db").unlink()  # the database is lost; logs/ is not
    fresh = hub_settings(tmp_path, nats_url, f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    hub = await start_hub(fresh)
    try:
        await eventually(lambda: stored(hub), what="the report imported at start-up")
        listing = await (await hub.http.get("/api/backtests")).json()
        assert [b["id"] for b in listing["backtests"]] == [1]
    finally:
        await hub.stop()


async def test_large_backtest_through_nats(hub: Hub, nc: Nats) -> None:
    points, fills = 100_000, 10_000
    rng = np.random.default_rng(3)
    values = 10_000 * np.exp(np.cumsum(rng.normal(0, 0.001, points)))
    start = 1_704_067_200
    event = backtest("bt-large", equity_curve=[
        {"timestamp": start + 60 * i, "value": float(v), "benchmark": 42_000.0 + i % 500}
        for i, v in enumerate(values)], trades=[
        {"timestamp": start + 600 * i, "asset": "BTC", "action": "BUY" if i % 2 == 0 else "SELL",
         "price": 42_000.0 + i, "quantity": 0.1, "fee": 0.5, "reasoning": "signal", "confidence": 60}
        for i in range(fills)])
    async with HubPublisher(nc) as publisher:
        await publisher.publish(BacktestCompleted.model_validate(event))
    await eventually(lambda: stored(hub), timeout=30, what="the large backtest stored")
    assert await count_rows(hub, BacktestTrade) == fills

    full = await (await hub.http.get("/api/backtests/1")).json()
    assert len(full["equity_curve"]["value"]) == points and len(full["trade_log"]) == fills
    assert full["metrics"]["trades"] == fills // 2
    small = await (await hub.http.get("/api/backtests/1?points=1000")).json()
    curve = small["equity_curve"]
    assert len(curve["value"]) <= 1000 and curve["downsampled"] and curve["points"] == points
    assert max(curve["value"]) == pytest.approx(values.max()) and min(curve["value"]) == pytest.approx(values.min())


def test_minmax_downsampling_keeps_extremes_and_order() -> None:
    values = np.sin(np.linspace(0, 20, 10_001)) + np.linspace(0, 1, 10_001)
    values[1234], values[8765] = 50.0, -50.0
    kept = minmax_indices(values, 100)
    assert len(kept) <= 100 and kept[0] == 0 and kept[-1] == 10_000
    assert 1234 in kept and 8765 in kept and list(kept) == sorted(kept)
    assert list(minmax_indices(values[:10], 100)) == list(range(10))


async def test_degenerate_backtest_gives_nulls_with_reasons(hub: Hub, nc: Nats) -> None:
    one_point = backtest("bt-flat", trades=[], equity_curve=[
        {"timestamp": "2024-01-01T00:00:00Z", "value": 1000.0}])
    await publish_raw(nc, "backtests.completed", one_point)
    await eventually(lambda: stored(hub))
    detail = await (await hub.http.get("/api/backtests/1")).json()
    assert detail["metrics"]["sharpe"] is None and "sharpe" in detail["metric_reasons"]
    assert detail["metrics"]["win_rate"] is None and detail["metrics"]["trades"] == 0
    assert detail["metrics"]["beta"] is None and detail["metric_reasons"]["beta"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"initial_capital": -1}, "initial_capital: Input should be greater than 0"),
    ({"equity_curve": [{"timestamp": "2024-01-01", "value": "lots"}]}, "equity_curve.0.value"),
    ({"strategy": None}, "strategy: Input should be a valid string"),
])
async def test_bad_backtest_is_dead_lettered(hub: Hub, nc: Nats, change: dict[str, Any], reason: str) -> None:
    dead = await nc.subscribe("hub.dlq.>")
    await publish_raw(nc, "backtests.completed", backtest(**change))
    record = orjson.loads((await dead.next_msg(timeout=5)).data)
    assert reason in record["reason"] and record["subject"] == "backtests.completed"
    assert await count_rows(hub, Backtest) == 0


async def _publish_many(nc: Nats) -> None:
    for i, (strategy, asset, shift) in enumerate([
        ("momentum", "BTC", 0.05), ("momentum", "ETH", -0.02), ("carry", "BTC", 0.10), ("carry", "SOL", 0.0)]):
        event = backtest(f"bt-{i}", strategy=strategy,
                         start=f"2024-0{i + 1}-01T00:00:00Z", end=f"2024-0{i + 1}-06T00:00:00Z")
        event["trades"] = [dict(t, asset=asset) for t in event["trades"]]
        event["equity_curve"] = [dict(p, value=p["value"] * (1 + shift * k))
                                 for k, p in enumerate(event["equity_curve"])]
        await publish_raw(nc, "backtests.completed", event)


async def test_backtest_listing_filters_sorts_and_pages(hub: Hub, nc: Nats) -> None:
    await _publish_many(nc)
    await eventually(lambda: stored(hub, 4))

    async def ids(query: str) -> list[int]:
        response = await hub.http.get(f"/api/backtests{query}")
        assert response.status == 200, await response.text()
        return [b["id"] for b in (await response.json())["backtests"]]

    assert await ids("") == [4, 3, 2, 1]
    assert await ids("?sort=created&order=asc") == [1, 2, 3, 4]
    assert await ids("?strategy=carry") == [4, 3]
    assert await ids("?asset=btc") == [3, 1]
    assert await ids("?since=2024-03-01T00:00:00Z") == [4, 3]
    assert await ids("?until=2024-02-01T00:00:00Z") == [1]
    by_return = await ids("?sort=total_return")
    assert by_return[0] == 3 and by_return[-1] == 2
    sharpe = [(b["id"], b["sharpe"]) for b in (await (await hub.http.get("/api/backtests?sort=sharpe")).json())["backtests"]]
    assert [s for _, s in sharpe if s is not None] == sorted([s for _, s in sharpe if s is not None], reverse=True)
    assert await ids("?limit=2&offset=1") == [3, 2]
    assert (await (await hub.http.get("/api/backtests?limit=1")).json())["total"] == 4


@pytest.mark.parametrize(("path", "status"), [
    ("/api/backtests?sort=alpha", 422), ("/api/backtests?limit=0", 422), ("/api/backtests?since=yesterday", 422),
    ("/api/backtests/99", 404), ("/api/backtests/99/report", 404), (f"/api/backtests/{10**25}", 404),
    ("/api/backtests/1?points=1", 422), ("/api/backtests/1?points=many", 422),
])
async def test_backtest_api_errors(hub: Hub, nc: Nats, path: str, status: int) -> None:
    await publish_raw(nc, "backtests.completed", backtest())
    await eventually(lambda: stored(hub))
    response = await hub.http.get(path)
    assert response.status == status and "error" in await response.json()


def test_view_trades_prints_the_latest_report_as_a_table(tmp_path: Path) -> None:
    import asyncio

    from handlers.events.backtest_completed import persist_backtest

    engine = create_hub_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")

    async def store() -> None:
        await upgrade(engine)
        for event_id in ("bt-a", "bt-b"):
            await persist_backtest(async_sessions(engine), tmp_path / "logs",
                                   BacktestCompleted.model_validate(backtest(event_id)))
        await engine.dispose()

    asyncio.run(store())
    env = {"HUB_LOGS_DIR": str(tmp_path / "logs"), "HUB_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = main_py("view-trades", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Backtest 2: rsi_reversion  2024-01-01 → 2024-01-06")
    header = lines[2].split()
    assert header == ["time", "asset", "action", "price", "quantity", "pnl", "conf", "reasoning"]
    assert lines[5].split()[:8] == ["2024-01-03", "00:00:00", "BTC", "SELL", "200.00", "1", "97.00", "65"]
    assert "4 fills, realized P/L 72.00, fees 3.00" in result.stdout
    assert "total_return 7.20%" in result.stdout and "win_rate 50.00%" in result.stdout
    assert "open at the end: long 1 ETH @ 50.00" in result.stdout
    first = main_py("view-trades", "1", env=env)
    assert first.stdout.startswith("Backtest 1:")
    empty = main_py("view-trades", env={**env, "HUB_LOGS_DIR": str(tmp_path / "none")})
    assert empty.returncode == 0 and empty.stdout.startswith("No backtest report")


async def test_publisher_says_what_to_change_when_the_server_limit_is_too_small(tmp_path: Path) -> None:
    with NatsServer(tmp_path, max_payload=1024 * 1024) as server:  # nats-server's own default
        from bus.connection import connect

        publisher = HubPublisher(await connect(server.url, "t"))
        big = backtest(equity_curve=[{"timestamp": 1_704_067_200 + i, "value": 1.0 + i} for i in range(40_000)])
        with pytest.raises(Exception, match="max_payload"):
            await publisher.publish(BacktestCompleted.model_validate(big))
        await publisher.close()


async def test_recorder_and_example_backtester_publish_to_the_hub(hub: Hub, nc: Nats) -> None:
    from bus.example_backtest import run

    recorder = run(days=40, seed=3)
    event = recorder.event(periods_per_year=24 * 365)
    assert event.start == recorder.curve[0].timestamp and len(event.equity_curve) == 40 * 24
    async with HubPublisher(nc) as publisher:
        await publisher.publish(event)
    await eventually(lambda: stored(hub), what="the example backtest stored")
    detail = await (await hub.http.get("/api/backtests/1")).json()
    assert detail["strategy"] == "sma_cross" and detail["parameters"] == {"fast": 24, "slow": 168}
    sells = [t for t in detail["trade_log"] if t["action"] == "SELL"]
    assert detail["metrics"]["trades"] == len(sells) and all(t["pnl"] is not None for t in sells)
    assert detail["conventions"]["periods_per_year"] == 8760.0
    assert detail["final_value"] == pytest.approx(event.equity_curve[-1].value)
