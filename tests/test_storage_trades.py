"""storage.sql.trade_rows on SQLite (its fast path) and PostgreSQL (the Core path): same results."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from sqlalchemy import func, select

from bus.consumer import Notification, Rejection

from core.events import TradeExecuted
from handlers.events.trade_executed import persist_trades
from storage.sql.engine import async_sessions, create_hub_engine, write_transactions
from storage.sql.migrate import upgrade
from storage.sql.models import Trade
from storage.sql.trade_rows import SQLITE_ROWS_PER_STATEMENT, insert_trades
from tests.support.payloads import trade


async def test_insert_round_trips_exactly_and_is_idempotent(database_url: str) -> None:
    engine = create_hub_engine(database_url)
    await upgrade(engine)
    sessions = async_sessions(engine)
    events = [
        TradeExecuted.model_validate(trade(event_id="tz", timestamp="2024-05-01T14:00:00.123456+02:00",
                                           reasoning="quotes ' \" ; DROP TABLE trades; -- <script>", source=None)),
        TradeExecuted.model_validate(trade(event_id="naive", timestamp="2024-05-01T12:00:01")),
    ]
    async with sessions() as session, session.begin():
        first = await insert_trades(session, events)
    async with sessions() as session, session.begin():
        again = await insert_trades(session, [*events, events[0]])
    assert [e.event_id for _, e in first] == ["tz", "naive"] and again == []

    async with sessions() as session:
        stored = (await session.scalars(select(Trade).order_by(Trade.id))).all()
    assert stored[0].timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert stored[1].timestamp == datetime(2024, 5, 1, 12, 0, 1, tzinfo=timezone.utc)
    assert stored[0].reasoning == events[0].reasoning and stored[0].source is None
    assert [row.id for row in stored] == [row_id for row_id, _ in first]
    await engine.dispose()


async def test_batches_larger_than_one_statement(database_url: str) -> None:
    engine = create_hub_engine(database_url)
    await upgrade(engine)
    sessions = async_sessions(engine)
    total = SQLITE_ROWS_PER_STATEMENT * 2 + 17
    events = [TradeExecuted.model_validate(trade(event_id=f"big-{i}", price=1.0 + i)) for i in range(total)]
    async with sessions() as session, session.begin():
        stored = await insert_trades(session, events)
    assert [e.event_id for _, e in stored] == [e.event_id for e in events]
    assert len({row_id for row_id, _ in stored}) == total
    await engine.dispose()


async def test_overlapping_batches_committing_at_once_store_each_trade_once(database_url: str) -> None:
    """As ingest does on PostgreSQL (two transactions open at once): a trade redelivered into
    the next batch waits for the first delivery's commit, then is recognised as its replay."""
    engine = create_hub_engine(database_url)
    await upgrade(engine)
    sessions = async_sessions(engine)
    shared = [TradeExecuted.model_validate(trade(event_id=f"both-{i}")) for i in range(50)]
    batches = [[TradeExecuted.model_validate(trade(event_id=f"{name}-{i}")) for i in range(500)] + shared
               for name in ("first", "second")]
    slots = asyncio.Semaphore(write_transactions(database_url))

    async def commit(batch: list[TradeExecuted]) -> list[Notification | Rejection]:
        async with slots:
            return await persist_trades(sessions, lambda: None, batch)

    results = await asyncio.gather(*(commit(batch) for batch in batches))
    notes = [note for answer in results for note in answer]
    assert all(isinstance(note, Notification) for note in notes)
    assert sum(not note.replay for note in notes if isinstance(note, Notification)) == 1050
    assert sum(note.replay for note in notes if isinstance(note, Notification)) == 50
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Trade)) == 1050
    await engine.dispose()
