"""Reading and writing the outcome worker's state: new trades, group books, trade outcomes."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.outcomes import GroupState, LiveFill, Outcome
from core.pairing import Book, Lot
from core.trade_metrics import PnlSums
from storage.sql.models import OutcomeGroup, Trade, TradeOutcome

GroupKey = tuple[str | None, str | None, str]  # (source, strategy, asset)


@dataclass(frozen=True)
class NewTrade:
    """A stored trade the worker has not paired yet."""

    group: GroupKey
    fill: LiveFill


def group_key_text(key: GroupKey) -> str:
    """The unique text of a group (its columns may be null, which SQL never finds unique)."""
    return orjson.dumps(list(key)).decode()


def _fill(trade: Trade) -> LiveFill:
    return LiveFill(trade.id, trade.timestamp.timestamp(), trade.action, trade.price,
                    trade.quantity, trade.fee, trade.confidence)


async def unpaired_trades(session: AsyncSession, after_id: int, limit: int) -> list[NewTrade]:
    """Trades after AFTER_ID with no outcome yet, in id order."""
    done = select(TradeOutcome.trade_id).where(TradeOutcome.trade_id == Trade.id)
    rows = await session.scalars(select(Trade).where(Trade.id > after_id, ~done.exists())
                                 .order_by(Trade.id).limit(limit))
    return [NewTrade((t.source, t.strategy, t.asset), _fill(t)) for t in rows]


async def group_trades(session: AsyncSession, group_id: int) -> list[LiveFill]:
    """Every paired trade of a group, for a re-pairing from the start."""
    rows = await session.scalars(select(Trade).join(TradeOutcome, TradeOutcome.trade_id == Trade.id)
                                 .where(TradeOutcome.group_id == group_id))
    return [_fill(t) for t in rows]


async def load_group(session: AsyncSession, key: GroupKey) -> tuple[OutcomeGroup, GroupState]:
    """The group's row (made when new) and its state: book, last key, sums, open entries."""
    row = await session.scalar(select(OutcomeGroup).where(OutcomeGroup.key == group_key_text(key)))
    if row is None:
        row = OutcomeGroup(key=group_key_text(key), source=key[0], strategy=key[1], asset=key[2],
                           lots=[], side=0, exits=0, wins=0, losses=0, win_total=0.0,
                           loss_total=0.0, fees=0.0)
        session.add(row)
        await session.flush()
        return row, GroupState()
    lots = deque(Lot(qty, price, time, fee, int(origin)) for origin, qty, price, time, fee in row.lots)
    book = Book(row.side, sum(lot.qty for lot in lots), lots)
    last = None if row.last_trade_id is None else (row.last_timestamp or 0.0, row.last_trade_id)
    sums = PnlSums(row.exits, row.wins, row.losses, row.win_total, row.loss_total,
                   row.largest_win, row.largest_loss)
    entries = await _outcomes(session, {lot.origin for lot in lots})
    return row, GroupState(book, last, sums, row.fees, entries)


async def _outcomes(session: AsyncSession, trade_ids: set[int]) -> dict[int, Outcome]:
    if not trade_ids:
        return {}
    rows = await session.scalars(select(TradeOutcome).where(TradeOutcome.trade_id.in_(trade_ids)))
    return {r.trade_id: Outcome(r.trade_id, r.timestamp, r.confidence, r.opened, r.remaining,
                                r.entry_pnl, r.exit_quantity, r.exit_pnl) for r in rows}


async def forget_outcomes(session: AsyncSession, group_id: int) -> None:
    """Drop a group's outcomes before it is paired again from the start."""
    await session.execute(delete(TradeOutcome).where(TradeOutcome.group_id == group_id))


def store_state(row: OutcomeGroup, state: GroupState) -> None:
    """Write STATE into the group's row."""
    row.lots = [[lot.origin, lot.qty, lot.price, lot.time, lot.fee] for lot in state.book.lots]
    row.side = state.book.side
    row.last_timestamp, row.last_trade_id = state.last_key or (None, None)
    sums = state.sums
    row.exits, row.wins, row.losses = sums.trades, sums.wins, sums.losses
    row.win_total, row.loss_total = sums.win_total, sums.loss_total
    row.largest_win, row.largest_loss = sums.largest_win, sums.largest_loss
    row.fees = state.fees


def _row(group_id: int, o: Outcome) -> dict[str, object]:
    return {"trade_id": o.trade_id, "group_id": group_id, "timestamp": o.timestamp,
            "confidence": o.confidence, "opened": o.opened, "remaining": o.remaining,
            "entry_pnl": o.entry_pnl, "exit_quantity": o.exit_quantity, "exit_pnl": o.exit_pnl}


async def store_outcomes(session: AsyncSession, group_id: int, new: Sequence[Outcome],
                         changed: Sequence[Outcome]) -> None:
    """Insert the NEW outcomes and update the CHANGED ones, each as one bulk statement."""
    if new:
        await session.execute(insert(TradeOutcome), [_row(group_id, o) for o in new])
    if changed:
        await session.execute(update(TradeOutcome), [
            {"trade_id": o.trade_id, "remaining": o.remaining, "entry_pnl": o.entry_pnl}
            for o in changed])


async def outcomes_of(session: AsyncSession, trade_ids: Sequence[int]) -> dict[int, Outcome]:
    """The outcomes known for these trades, by trade id (for the REST views)."""
    return await _outcomes(session, set(trade_ids))


async def paired_count(session: AsyncSession) -> int:
    """How many trades have an outcome."""
    return int(await session.scalar(select(func.count()).select_from(TradeOutcome)) or 0)
