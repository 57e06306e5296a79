"""Decision memory's rows: distinct reasoning texts, which text each trade gave, and the trades
behind a ranking of texts, filtered."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, false, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.api import OutcomeOut
from core.decisions import Decision, DecisionFilter, IndexLag, Kind
from core.outcomes import Outcome
from core.pairing import EPS
from storage.sql.models import (
    Backtest, BacktestTrade, DecisionText, ReasoningText, Trade, TradeOutcome,
)

D, R, O = DecisionText, ReasoningText, TradeOutcome
TABLES: dict[Kind, Any] = {"live": Trade, "backtest": BacktestTrade}
# An outcome's realized PnL, as core.outcomes.Outcome.realized_pnl defines it.
REALIZED = case((O.exit_quantity > 0, O.exit_pnl), (O.remaining < EPS, O.entry_pnl), else_=None)


def digest(text: str) -> str:
    """The key of a reasoning text: equal texts, one row."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


async def trades_after(session: AsyncSession, kind: Kind, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(id, reasoning) of the next LIMIT trades of KIND after AFTER_ID, in id order."""
    table = TABLES[kind]
    rows = await session.execute(select(table.id, table.reasoning).where(table.id > after_id)
                                 .order_by(table.id).limit(limit))
    return [(row[0], row[1]) for row in rows]


async def unmapped_below(session: AsyncSession, kind: Kind, mark: int, limit: int) -> list[tuple[int, str]]:
    """(id, reasoning) of trades of KIND up to MARK that gave a text but were never mapped: a
    commit that landed below the checkpoint. A scan of the table: for an occasional sweep."""
    table = TABLES[kind]
    mapped = select(D.trade_id).where(D.kind == kind, D.trade_id == table.id)
    rows = await session.execute(select(table.id, table.reasoning)
                                 .where(table.id <= mark, func.trim(table.reasoning) != "", ~mapped.exists())
                                 .order_by(table.id).limit(limit))
    return [(row[0], row[1]) for row in rows]


async def map_texts(session: AsyncSession, kind: Kind, trades: Sequence[tuple[int, str]]) -> int:
    """Record which text each (trade id, reasoning) gave, adding the texts never seen; how many
    texts were new. Empty reasoning gives no text. The caller is the only writer (a lease)."""
    keyed = [(trade_id, digest(text), text) for trade_id, text in trades if text.strip()]
    if not keyed:
        return 0
    by_digest = {key: text for _, key, text in keyed}
    ids = await _text_ids(session, list(by_digest))
    if new := [{"digest": key, "text": text} for key, text in by_digest.items() if key not in ids]:
        await session.execute(insert(R), new)
        ids.update(await _text_ids(session, [row["digest"] for row in new]))
    await session.execute(insert(D), [{"kind": kind, "trade_id": trade_id, "text_id": ids[key]}
                                      for trade_id, key, _ in keyed])
    return len(new)


async def _text_ids(session: AsyncSession, digests: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(digests), 500):  # under SQLite's limit on bound parameters
        rows = await session.execute(select(R.digest, R.id).where(R.digest.in_(digests[start:start + 500])))
        found.update((row[0], row[1]) for row in rows)
    return found


async def texts_after(session: AsyncSession, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(id, text) of the next LIMIT distinct texts after AFTER_ID, in id order."""
    rows = await session.execute(select(R.id, R.text).where(R.id > after_id).order_by(R.id).limit(limit))
    return [(row[0], row[1]) for row in rows]


async def text_of(session: AsyncSession, kind: Kind, trade_id: int) -> tuple[int, str] | None:
    """The (text id, text) a trade gave, once mapped."""
    row = (await session.execute(select(R.id, R.text).join(D, D.text_id == R.id)
                                 .where(D.kind == kind, D.trade_id == trade_id))).first()
    return None if row is None else (row[0], row[1])


async def lag(session: AsyncSession, mapped: int, embedded: int) -> IndexLag:
    """Trades not searchable by meaning yet: live ones not mapped, and any mapped to a text not
    embedded. Two index range counts (nothing to join while caught up); the age, by the live
    trades' time, only when behind."""
    unmapped = await session.scalar(select(func.count()).where(Trade.id > mapped)) or 0
    # By text id alone: with the kind too, SQLite walks the (kind, trade_id) key instead.
    waiting = await session.scalar(select(func.count()).select_from(D).where(D.text_id > embedded)) or 0
    if not unmapped and not waiting:
        return IndexLag(trades_behind=0, seconds_behind=0.0)
    oldest = await session.scalar(select(func.min(Trade.timestamp)).where(or_(
        Trade.id > mapped,
        Trade.id.in_(select(D.trade_id).where(D.text_id > embedded, D.kind == "live")))))
    seconds = max(0.0, time.time() - oldest.timestamp()) if oldest is not None else 0.0
    return IndexLag(trades_behind=int(unmapped + waiting), seconds_behind=round(seconds, 3))


@dataclass(frozen=True)
class Before:
    """Only live trades earlier than this one (by timestamp, then id), not it, and with
    SAME_SOURCE only those of its SOURCE (null included)."""

    timestamp: Any
    trade_id: int
    same_source: bool = False
    source: str | None = None


async def candidates(session: AsyncSession, kind: Kind, text_ids: Sequence[int], where: DecisionFilter,
                     per_text: int, before: Before | None = None) -> list[tuple[int, int, float]]:
    """(text id, trade id, epoch seconds) of the trades of KIND that gave these texts and match
    WHERE: the newest PER_TEXT of each text."""
    if not text_ids:
        return []
    table = TABLES[kind]
    extra = (O, O.trade_id == table.id) if kind == "live" else (Backtest, Backtest.id == table.backtest_id)
    newest = func.row_number().over(partition_by=D.text_id, order_by=table.id.desc()).label("newest")
    chosen = (select(D.text_id, D.trade_id, table.timestamp, newest).join(table, table.id == D.trade_id)
              .outerjoin(*extra)
              .where(D.kind == kind, D.text_id.in_(list(text_ids)), *_conditions(kind, where, before))
              .subquery())
    rows = await session.execute(select(chosen.c.text_id, chosen.c.trade_id, chosen.c.timestamp)
                                 .where(chosen.c.newest <= per_text))
    return [(row[0], row[1], _epoch(row[2])) for row in rows]


def _epoch(stamp: datetime) -> float:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


async def decisions(session: AsyncSession, kind: Kind, trade_ids: Sequence[int]) -> dict[int, Decision]:
    """The trades of KIND with these ids, as decisions (score 0), with their outcomes."""
    if not trade_ids:
        return {}
    table = TABLES[kind]
    if kind == "live":
        rows = await session.execute(
            select(Trade, O.exit_quantity, O.remaining, O.opened, O.exit_pnl, O.entry_pnl)
            .outerjoin(O, O.trade_id == Trade.id).where(Trade.id.in_(list(trade_ids))))
        return {row[0].id: _live(row[0], row[1:]) for row in rows}
    tested = await session.execute(select(table, Backtest.strategy).join(Backtest, Backtest.id == table.backtest_id)
                                   .where(table.id.in_(list(trade_ids))))
    return {row[0].id: _tested(row[0], row[1]) for row in tested}


def _live(trade: Trade, paired: Sequence[Any]) -> Decision:
    decision = Decision.model_validate(trade, from_attributes=True)
    if paired[0] is not None:
        outcome = Outcome(trade.id, 0.0, None, opened=paired[2], remaining=paired[1],
                          entry_pnl=paired[4], exit_quantity=paired[0], exit_pnl=paired[3])
        decision.outcome = OutcomeOut(status=outcome.status, realized_pnl=outcome.realized_pnl)
    return decision


def _tested(trade: BacktestTrade, strategy: str) -> Decision:
    """A backtest's trade as a decision: its exits carry their PnL; it has no source."""
    outcome = OutcomeOut(status="exit", realized_pnl=trade.pnl) if trade.pnl is not None else OutcomeOut()
    return Decision(id=trade.id, event_id=trade.event_id, timestamp=trade.timestamp, asset=trade.asset,
                    action=trade.action, price=trade.price, quantity=trade.quantity, fee=trade.fee,
                    reasoning=trade.reasoning, confidence=trade.confidence, source=None,
                    strategy=strategy, outcome=outcome, kind="backtest", backtest_id=trade.backtest_id,
                    score=0.0)


def _conditions(kind: Kind, where: DecisionFilter, before: Before | None) -> list[Any]:
    table = TABLES[kind]
    found: list[Any] = []
    if where.asset is not None:
        found.append(table.asset == where.asset)
    if where.action is not None:
        found.append(table.action == where.action)
    if where.since is not None:
        found.append(table.timestamp >= where.since)
    if where.until is not None:
        found.append(table.timestamp < where.until)
    if before is not None:
        found.append(or_(table.timestamp < before.timestamp,
                         and_(table.timestamp == before.timestamp, table.id < before.trade_id)))
        if before.same_source and kind == "live":
            found.append(Trade.source.is_(None) if before.source is None else Trade.source == before.source)
    if kind == "live":
        found += [Trade.source == where.source] if where.source is not None else []
        found += [Trade.strategy == where.strategy] if where.strategy is not None else []
        found += _outcome_condition(where, REALIZED, O.trade_id.is_not(None))
    else:
        # A backtest has a strategy, not a source; its exits carry their PnL.
        found += [false()] if where.source is not None else []
        found += [Backtest.strategy == where.strategy] if where.strategy is not None else []
        found += _outcome_condition(where, BacktestTrade.pnl, false())  # entries: no outcome kept
    return found


def _outcome_condition(where: DecisionFilter, realized: Any, paired: Any) -> list[Any]:
    if where.outcome == "win":
        return [realized > 0]
    if where.outcome == "loss":
        return [realized <= 0]
    if where.outcome == "open":  # paired, and not closed yet
        return [paired, realized.is_(None)]
    return []
