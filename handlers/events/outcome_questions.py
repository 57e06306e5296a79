"""Answers to the questions about live outcomes, the same over REST, NATS and the CLI."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.calibration import Calibration, calibrate
from core.errors import NotFound
from core.outcomes import LiveFill, decisions_by_asset
from core.performance import (
    BacktestCalibrationQuery, CalibrationQuery, GroupFilter, PerformancePage, PerformanceQuery,
    PnlPoint, PnlQuery, PnlSeries, PositionsPage, StrategyComparison, StrategyQuery, StrategySide,
)
from core.trade_metrics import PNL_METRICS
from storage.sql import performance_rows
from storage.sql.models import Backtest, BacktestTrade

Sessions = async_sessionmaker[Any]
INTERVAL_SECONDS = {"1h": 3600, "1d": 86400}


async def answer_performance(sessions: Sessions, query: PerformanceQuery) -> PerformancePage:
    """Each group's realized performance."""
    async with sessions() as session:
        return PerformancePage(groups=await performance_rows.performance(session, query))


async def answer_positions(sessions: Sessions, query: GroupFilter) -> PositionsPage:
    """The open positions."""
    async with sessions() as session:
        return PositionsPage(positions=await performance_rows.positions(session, query))


async def answer_pnl(sessions: Sessions, query: PnlQuery) -> PnlSeries:
    """Realized PnL per interval, and its running total."""
    async with sessions() as session:
        rows = await performance_rows.exits(session, query)
    width = INTERVAL_SECONDS[query.interval]
    buckets: dict[int, float] = defaultdict(float)
    for stamp, pnl in rows:
        buckets[int(stamp // width)] += pnl
    points, total = [], 0.0
    for bucket in sorted(buckets):
        total += buckets[bucket]
        points.append(PnlPoint(time=datetime.fromtimestamp(bucket * width, timezone.utc),
                               realized_pnl=buckets[bucket], cumulative_pnl=total))
    return PnlSeries(interval=query.interval, points=points)


async def answer_calibration(sessions: Sessions, query: CalibrationQuery) -> Calibration:
    """Whether the matching groups' confidence predicts their closed entries' outcomes."""
    async with sessions() as session:
        closed, pending = await performance_rows.decisions(session, query, query.since, query.until)
    return calibrate(closed, pending, query.bins)


async def backtest_calibration(sessions: Sessions, backtest_id: int, bins: int) -> Calibration:
    """The same question of a backtest's trade log."""
    async with sessions() as session:
        if await session.get(Backtest, backtest_id) is None:
            raise NotFound(f"no backtest with id {backtest_id}")
        trades = await session.scalars(select(BacktestTrade).where(BacktestTrade.backtest_id == backtest_id)
                                       .order_by(BacktestTrade.id))
        fills = [(t.asset, LiveFill(t.id, t.timestamp.timestamp(), t.action, t.price, t.quantity,
                                    t.fee, t.confidence)) for t in trades]
    return calibrate(*decisions_by_asset(fills), bins=bins)


async def answer_backtest_calibration(
    sessions: Sessions, backtest_id: int, query: BacktestCalibrationQuery
) -> Calibration:
    """GET /api/backtests/{id}/calibration."""
    return await backtest_calibration(sessions, backtest_id, query.bins)


async def answer_strategy(sessions: Sessions, name: str, query: StrategyQuery) -> StrategyComparison:
    """A strategy's backtest (the given or the latest) beside its live trading."""
    async with sessions() as session:
        chosen = select(Backtest).where(Backtest.strategy == name)
        if query.backtest is not None:
            chosen = chosen.where(Backtest.id == query.backtest)
        backtest = await session.scalar(chosen.order_by(Backtest.created_at.desc(), Backtest.id.desc()))
    if query.backtest is not None and backtest is None:
        raise NotFound(f"no backtest {query.backtest} of strategy {name!r}")
    live_rows = await answer_performance(sessions, PerformanceQuery(strategy=name, group_by=[]))
    live_metrics: dict[str, float | int | None] = (
        {"trades": 0} if not live_rows.groups else
        {"trades": live_rows.groups[0].exits,
         **live_rows.groups[0].model_dump(include=set(PNL_METRICS[1:]))})
    live = StrategySide(metrics=live_metrics, calibration=await answer_calibration(
        sessions, CalibrationQuery(strategy=name)))
    tested = None
    if backtest is not None:
        stored = backtest.metrics["metrics"]
        tested = StrategySide(metrics={k: stored.get(k) for k in PNL_METRICS},
                              calibration=await backtest_calibration(sessions, backtest.id, 10))
    return StrategyComparison(strategy=name, backtest_id=backtest.id if backtest else None,
                              backtest=tested, live=live, differences=_differences(tested, live))


def _differences(tested: StrategySide | None, live: StrategySide) -> dict[str, float | None]:
    if tested is None:
        return {}
    pairs = {k: (live.metrics.get(k), tested.metrics.get(k)) for k in PNL_METRICS}
    pairs["spearman_rho"] = (live.calibration.spearman.rho, tested.calibration.spearman.rho)
    return {k: (a - b if a is not None and b is not None else None) for k, (a, b) in pairs.items()}
