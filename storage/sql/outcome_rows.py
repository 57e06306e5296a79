"""Reading and writing the outcome worker's state: new trades, group books, trade outcomes."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.outcomes import GroupState, LiveFill, Outcome
from core.pairing import Book, Lot
from core.trade_metrics import PnlSums
from storage.sql.models import OutcomeGroup, Trade, TradeOutcome

GroupKey = tuple[str | None, str | None, str]  # (source, strategy, asset)
_GROUPS, _OUTCOMES = cast(Table, OutcomeGroup.__table__), cast(Table, TradeOutcome.__table__)


@dataclass(frozen=True)
class NewTrade:
    """A stored trade the worker has not paired yet."""

    group: GroupKey
    fill: LiveFill


def group_key_text(key: GroupKey) -> str:
    """The unique text of a group (its columns may be null, which SQL never finds unique)."""
    return orjson.dumps(list(key)).decode()


_FILL_COLUMNS = (Trade.id, Trade.timestamp, Trade.action, Trade.price, Trade.quantity, Trade.fee,
                 Trade.confidence)


def _fill(row: Any) -> LiveFill:
    return LiveFill(row[0], row[1].timestamp(), *row[2:7])


async def unpaired_trades(session: AsyncSession, after_id: int, limit: int) -> list[NewTrade]:
    """Trades after AFTER_ID with no outcome yet, in id order (columns, not ORM objects:
    this is the worker's hot read)."""
    done = select(TradeOutcome.trade_id).where(TradeOutcome.trade_id == Trade.id)
    rows = await session.execute(
        select(*_FILL_COLUMNS, Trade.source, Trade.strategy, Trade.asset)
        .where(Trade.id > after_id, ~done.exists()).order_by(Trade.id).limit(limit))
    return [NewTrade((row[7], row[8], row[9]), _fill(row)) for row in rows]


async def group_trades(session: AsyncSession, group_id: int) -> list[LiveFill]:
    """Every paired trade of a group, for a re-pairing from the start."""
    rows = await session.execute(select(*_FILL_COLUMNS).join(TradeOutcome, TradeOutcome.trade_id == Trade.id)
                                 .where(TradeOutcome.group_id == group_id))
    return [_fill(row) for row in rows]


async def load_groups(
    session: AsyncSession, keys: set[GroupKey]
) -> dict[GroupKey, tuple[int | None, GroupState]]:
    """Each group's id (None: not stored yet) and state: book, last key, sums, open entries;
    in two statements whatever the number of groups."""
    texts = {group_key_text(key): key for key in keys}
    rows = {texts[r.key]: r for r in await session.scalars(
        select(OutcomeGroup).where(OutcomeGroup.key.in_(texts)))}
    origins = {int(lot[0]) for row in rows.values() for lot in row.lots}
    entries = await _outcomes(session, origins)
    found: dict[GroupKey, tuple[int | None, GroupState]] = {
        key: (row.id, _state(row, entries)) for key, row in rows.items()}
    return {key: found.get(key, (None, GroupState())) for key in keys}


async def create_groups(session: AsyncSession, keys: Sequence[GroupKey]) -> dict[GroupKey, int]:
    """Store new groups (empty); their ids."""
    if not keys:
        return {}
    rows: list[dict[str, Any]] = [{"key": group_key_text(k), "source": k[0], "strategy": k[1], "asset": k[2],
             "lots": [], "side": 0, "exits": 0, "wins": 0, "losses": 0, "win_total": 0.0,
             "loss_total": 0.0, "fees": 0.0} for k in keys]
    made = await session.execute(insert(_GROUPS).returning(_GROUPS.c.id, _GROUPS.c.key), rows)
    ids = {key: group_id for group_id, key in made}
    return {k: ids[group_key_text(k)] for k in keys}


def _state(row: OutcomeGroup, entries: dict[int, Outcome]) -> GroupState:
    lots = deque(Lot(qty, price, time, fee, int(origin)) for origin, qty, price, time, fee in row.lots)
    book = Book(row.side, sum(lot.qty for lot in lots), lots)
    last = None if row.last_trade_id is None else (row.last_timestamp or 0.0, row.last_trade_id)
    sums = PnlSums(row.exits, row.wins, row.losses, row.win_total, row.loss_total,
                   row.largest_win, row.largest_loss)
    return GroupState(book, last, sums, row.fees, {lot.origin: entries[lot.origin] for lot in lots})


IDS_PER_QUERY = 10_000  # asyncpg allows 32,767 bound parameters; a re-paired group can hold more


async def _outcomes(session: AsyncSession, trade_ids: set[int]) -> dict[int, Outcome]:
    ids, found = sorted(trade_ids), {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        rows = await session.scalars(select(TradeOutcome).where(
            TradeOutcome.trade_id.in_(ids[start:start + IDS_PER_QUERY])))
        found.update({r.trade_id: Outcome(r.trade_id, r.timestamp, r.confidence, r.opened, r.remaining,
                                          r.entry_pnl, r.exit_quantity, r.exit_pnl) for r in rows})
    return found


async def forget_outcomes(session: AsyncSession, group_id: int) -> None:
    """Drop a group's outcomes before it is paired again from the start."""
    await session.execute(delete(TradeOutcome).where(TradeOutcome.group_id == group_id))




async def store_states(session: AsyncSession, states: Sequence[tuple[int, GroupState]]) -> None:
    """Write each (group id, state) into its row, as one bulk UPDATE (Core: the ORM's unit of
    work cost the worker four fifths of its time)."""
    if not states:
        return
    values = []
    for group_id, state in states:
        sums, last = state.sums, state.last_key or (None, None)
        lots = state.book.lots
        values.append({
            "gid": group_id, "side": state.book.side, "fees": state.fees,
            "lots": [[lot.origin, lot.qty, lot.price, lot.time, lot.fee] for lot in lots],
            "open_quantity": sum(lot.qty for lot in lots), "cost_basis": sum(lot.qty * lot.price for lot in lots),
            "opened_at": min((lot.time for lot in lots), default=None),
            "last_timestamp": last[0], "last_trade_id": last[1], "exits": sums.trades,
            "wins": sums.wins, "losses": sums.losses, "win_total": sums.win_total,
            "loss_total": sums.loss_total, "largest_win": sums.largest_win,
            "largest_loss": sums.largest_loss})
    columns: dict[str, Any] = {name: bindparam(name) for name in values[0] if name != "gid"}
    await session.execute(update(_GROUPS).where(_GROUPS.c.id == bindparam("gid")).values(columns),
                          values)


def _row(group_id: int, o: Outcome) -> dict[str, object]:
    return {"trade_id": o.trade_id, "group_id": group_id, "timestamp": o.timestamp,
            "confidence": o.confidence, "opened": o.opened, "remaining": o.remaining,
            "entry_pnl": o.entry_pnl, "exit_quantity": o.exit_quantity, "exit_pnl": o.exit_pnl}


async def store_outcomes(session: AsyncSession, new: Sequence[tuple[int, Outcome]],
                         changed: Sequence[Outcome]) -> None:
    """Insert the NEW (group id, outcome)s and update the CHANGED outcomes, in two bulk
    statements."""
    if new:
        await session.execute(insert(_OUTCOMES), [_row(group_id, o) for group_id, o in new])
    if changed:
        statement = (update(_OUTCOMES).where(_OUTCOMES.c.trade_id == bindparam("tid"))
                     .values(remaining=bindparam("rem"), entry_pnl=bindparam("pnl")))
        await session.execute(statement, [{"tid": o.trade_id, "rem": o.remaining, "pnl": o.entry_pnl}
                                          for o in changed])


async def outcomes_of(session: AsyncSession, trade_ids: Sequence[int]) -> dict[int, Outcome]:
    """The outcomes known for these trades, by trade id (for the REST views)."""
    return await _outcomes(session, set(trade_ids))


async def paired_count(session: AsyncSession) -> int:
    """How many trades have an outcome."""
    return int(await session.scalar(select(func.count()).select_from(TradeOutcome)) or 0)
