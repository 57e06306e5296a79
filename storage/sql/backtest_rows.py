"""Writing and reading backtests, their trades and their equity curves."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import numpy as np
import orjson
from numpy.typing import NDArray
from sqlalchemy import Select, Table, exists, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.api import BacktestQuery
from core.backtest_report import Analysis
from core.events import BacktestCompleted
from storage.sql.models import Backtest, BacktestData, BacktestTrade

SORT_COLUMNS = {
    "created": Backtest.created_at, "sharpe": Backtest.sharpe,
    "total_return": Backtest.total_return, "max_drawdown": Backtest.max_drawdown,
}


async def find_backtest(session: AsyncSession, event_id: str) -> Backtest | None:
    """The backtest stored for EVENT_ID, if any."""
    return (await session.scalars(select(Backtest).where(Backtest.event_id == event_id))).first()


def _backtest_row(event: BacktestCompleted, analysis: Analysis, created_at: datetime) -> dict[str, Any]:
    result = analysis.metrics
    headline = {name: result.metrics[name] for name in
                ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate")}
    return {
        "event_id": event.event_id, "strategy": event.strategy, "parameters": event.parameters,
        "start": event.start, "end": event.end, "initial_capital": event.initial_capital,
        "final_value": analysis.final_value, "benchmark": event.benchmark,
        "trades": int(result.metrics["trades"] or 0), **headline,
        "metrics": result.as_dict(), "open_positions": analysis.open_positions,
        "runner": {"final_value": event.final_value, "metrics": event.metrics},
        "created_at": created_at,
    }


def _trade_rows(backtest_id: int, event: BacktestCompleted, analysis: Analysis) -> list[dict[str, Any]]:
    pnl = analysis.pairing.pnl_per_fill
    return [
        {"backtest_id": backtest_id, "event_id": f"{event.event_id}#{index}",
         "timestamp": fill.timestamp, "asset": fill.asset, "action": fill.action,
         "price": fill.price, "quantity": fill.quantity, "fee": fill.fee, "pnl": pnl[index],
         "reasoning": fill.reasoning, "confidence": fill.confidence}
        for index, fill in enumerate(event.trades)
    ]


async def insert_backtest(
    session: AsyncSession, event: BacktestCompleted, analysis: Analysis, created_at: datetime,
    backtest_id: int | None = None,
) -> int:
    """Insert the backtest, its trades and its curve; returns its id (BACKTEST_ID if given)."""
    row = _backtest_row(event, analysis, created_at)
    if backtest_id is not None:
        row["id"] = backtest_id
    new_id = int((await session.execute(insert(Backtest).returning(Backtest.id), [row])).scalar_one())
    if backtest_id is not None and session.get_bind().dialect.name == "postgresql":
        # An explicit id does not advance the sequence; without this the next insert collides.
        await session.execute(text(
            "SELECT setval(pg_get_serial_sequence('backtests', 'id'), (SELECT max(id) FROM backtests))"))
    trades = _trade_rows(new_id, event, analysis)
    ids: list[int] = []
    if trades:
        # Core on the connection: the ORM's bulk path takes 30x as long for 10,000 rows.
        connection = await session.connection()
        table = cast(Table, BacktestTrade.__table__)
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids = list((await connection.execute(statement, trades)).scalars())
    curve = np.ascontiguousarray(analysis.curve, dtype="<f8")
    session.add(BacktestData(backtest_id=new_id, points=curve.shape[1], curve=curve.tobytes(),
                             trade_log=_trade_log(ids, trades, event.strategy)))
    await session.flush()
    return new_id


def _trade_log(ids: list[int], trades: list[dict[str, Any]], strategy: str) -> bytes:
    """The trade log in the API's schema (BacktestTradeOut), as JSON."""
    return orjson.dumps(
        [{"id": trade_id, **{k: v for k, v in trade.items() if k != "backtest_id"},
          "source": None, "strategy": strategy} for trade_id, trade in zip(ids, trades)],
        option=orjson.OPT_UTC_Z,
    )


def _filtered(query: BacktestQuery) -> Select[Any]:
    statement = select(Backtest)
    if query.strategy is not None:
        statement = statement.where(Backtest.strategy == query.strategy)
    if query.asset is not None:
        traded = select(BacktestTrade.id).where(
            BacktestTrade.backtest_id == Backtest.id, BacktestTrade.asset == query.asset)
        statement = statement.where(exists(traded))
    if query.since is not None:
        statement = statement.where(Backtest.end >= query.since)
    if query.until is not None:
        statement = statement.where(Backtest.start < query.until)
    return statement


async def list_backtests(session: AsyncSession, query: BacktestQuery) -> tuple[list[Backtest], int]:
    """A page of backtests matching QUERY in its order, and how many match in all."""
    statement = _filtered(query)
    total = int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)
    column = SORT_COLUMNS[query.sort]
    ordered = column.desc() if query.order == "desc" else column.asc()
    page = statement.order_by(ordered.nulls_last(), Backtest.id.desc())
    rows = (await session.scalars(page.offset(query.offset).limit(query.limit))).all()
    return list(rows), total


async def get_backtest(session: AsyncSession, backtest_id: int) -> Backtest | None:
    """The backtest with BACKTEST_ID, or None."""
    return await session.get(Backtest, backtest_id)


async def get_backtest_data(
    session: AsyncSession, backtest_id: int
) -> tuple[NDArray[np.float64], bytes]:
    """Its equity curve as (3, n) float64 columns, and its trade log as API JSON."""
    stored = await session.get(BacktestData, backtest_id)
    if stored is None:
        return np.empty((3, 0)), b"[]"
    return np.frombuffer(stored.curve, dtype="<f8").reshape(3, stored.points), stored.trade_log
