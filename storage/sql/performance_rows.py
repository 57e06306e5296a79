"""The queries behind live performance: group sums, open positions, PnL over time, decisions.

Without a time range, performance is read from each group's sums, kept by the outcome worker,
so the answer costs a scan of the groups, not of the trades. With one, it is summed from the
exits in that range.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.performance import GroupFilter, PerformanceQuery, PerformanceRow, Position
from core.trade_metrics import PnlSums
from storage.sql.models import OutcomeGroup, Trade, TradeOutcome

G, O = OutcomeGroup, TradeOutcome


def _where(statement: Any, groups: GroupFilter) -> Any:
    for name in ("source", "strategy", "asset"):
        if (value := getattr(groups, name)) is not None:
            statement = statement.where(getattr(G, name) == value)
    return statement


def _epoch(value: datetime) -> float:
    return value.astimezone(timezone.utc).timestamp()


def _in_range(statement: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        statement = statement.where(O.timestamp >= _epoch(since))
    if until is not None:
        statement = statement.where(O.timestamp < _epoch(until))
    return statement


def _sums_of_groups() -> list[Any]:
    return [func.sum(G.exits), func.sum(G.wins), func.sum(G.losses), func.sum(G.win_total),
            func.sum(G.loss_total), func.max(G.largest_win), func.min(G.largest_loss),
            func.sum(G.fees), func.sum(case((G.side != 0, 1), else_=0))]


def _sums_of_exits() -> list[Any]:
    won, lost = O.exit_pnl > 0, O.exit_pnl < 0
    exit_ = O.exit_quantity > 0
    return [func.sum(case((exit_, 1), else_=0)), func.sum(case((exit_ & won, 1), else_=0)),
            func.sum(case((exit_ & lost, 1), else_=0)),
            func.sum(case((exit_ & won, O.exit_pnl), else_=0.0)),
            func.sum(case((exit_ & lost, O.exit_pnl), else_=0.0)),
            func.max(case((exit_ & won, O.exit_pnl))), func.min(case((exit_ & lost, O.exit_pnl))),
            func.sum(Trade.fee), func.count(func.distinct(case((G.side != 0, G.id))))]


async def performance(session: AsyncSession, query: PerformanceQuery) -> list[PerformanceRow]:
    """One row per group of query.group_by, largest realized PnL first."""
    keys = [getattr(G, name) for name in query.group_by]
    if query.since is None and query.until is None:
        statement = select(*keys, *_sums_of_groups())
    else:
        statement = _in_range(select(*keys, *_sums_of_exits()).select_from(O)
                              .join(G, G.id == O.group_id).join(Trade, Trade.id == O.trade_id),
                              query.since, query.until)
    statement = _where(statement, query).group_by(*keys)
    rows = []
    for row in await session.execute(statement):
        group = dict(zip(query.group_by, row[:len(keys)], strict=True))
        exits, wins, losses, won, lost, best, worst, fees, open_books = row[len(keys):]
        if not exits and not fees and not open_books:
            continue  # a group with nothing in the range
        sums = PnlSums(int(exits or 0), int(wins or 0), int(losses or 0), float(won or 0.0),
                       float(lost or 0.0), best, worst)
        rows.append(PerformanceRow.of(group, sums, float(fees or 0.0), int(open_books or 0)))
    return sorted(rows, key=lambda r: (-r.realized_pnl, r.source or "", r.strategy or "", r.asset or ""))


async def positions(session: AsyncSession, groups: GroupFilter) -> list[Position]:
    """The open lots of each matching group, as one position per group."""
    found = []
    columns = select(G.source, G.strategy, G.asset, G.side, G.open_quantity, G.cost_basis, G.opened_at)
    for source, strategy, asset, side, quantity, cost, opened in await session.execute(
            _where(columns.where(G.side != 0), groups)):
        found.append(Position(
            source=source, strategy=strategy, asset=asset, side="long" if side > 0 else "short",
            quantity=quantity, avg_entry_price=cost / quantity if quantity else 0.0,
            opened_at=datetime.fromtimestamp(opened or 0.0, timezone.utc), cost_basis=cost))
    return sorted(found, key=lambda p: (p.source or "", p.strategy or "", p.asset))


async def exits(session: AsyncSession, groups: GroupFilter) -> Sequence[Any]:
    """(epoch time, realized PnL) of every matching exit, in time order."""
    statement = _where(select(O.timestamp, O.exit_pnl).join(G, G.id == O.group_id)
                       .where(O.exit_quantity > 0), groups).order_by(O.timestamp)
    return list(await session.execute(statement))


async def decisions(
    session: AsyncSession, groups: GroupFilter, since: datetime | None, until: datetime | None
) -> tuple[list[tuple[float, float]], int]:
    """Calibration's input: (confidence, PnL) of the closed entries, and the open ones' count."""
    entries = _in_range(_where(select(O.confidence, O.entry_pnl, O.remaining)
                               .join(G, G.id == O.group_id).where(O.opened > 0), groups),
                        since, until)
    closed, pending = [], 0
    for confidence, pnl, remaining in await session.execute(entries):
        if remaining > 0:
            pending += 1
        elif confidence is not None:
            closed.append((float(confidence), float(pnl)))
    return closed, pending
