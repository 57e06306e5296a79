"""storage.sql.trade_rows on SQLite (its own autocommit connection) and PostgreSQL (one JSON
parameter per batch): the same results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from bus.consumer import Notification, Rejection

from core.events import TRADE_FIELDS, TradeExecuted
from handlers.events.trade_executed import persist_trades, trade_document
from storage.sql.engine import async_sessions, create_hub_engine, write_transactions
from storage.sql.migrate import upgrade
from storage.sql.models import Trade
from storage.sql.trade_rows import SQLITE_ROWS_PER_STATEMENT, TradeWriter, row_json
from tests.support.payloads import trade

Store = tuple[TradeWriter, async_sessionmaker[Any]]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated database's trade writer and session factory."""
    engine = create_hub_engine(database_url)
    await upgrade(engine)
    writer = TradeWriter(engine)
    yield writer, async_sessions(engine)
    await writer.close()
    await engine.dispose()


async def test_insert_round_trips_exactly_and_is_idempotent(store: Store) -> None:
    writer, sessions = store
    events = [
        TradeExecuted.model_validate(trade(event_id="tz", timestamp="2024-05-01T14:00:00.123456+02:00",
                                           reasoning="quotes ' \" ; DROP TABLE trades; -- <script>", source=None)),
        TradeExecuted.model_validate(trade(event_id="naive", timestamp="2024-05-01T12:00:01")),
    ]
    first = await writer.insert(events)
    await writer.close()  # the next insert opens another connection
    again = await writer.insert([*events, events[0]])
    assert [new.event.event_id for new in first] == ["tz", "naive"] and again == []

    async with sessions() as session:
        stored = (await session.scalars(select(Trade).order_by(Trade.id))).all()
    assert stored[0].timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert stored[1].timestamp == datetime(2024, 5, 1, 12, 0, 1, tzinfo=timezone.utc)
    assert stored[0].reasoning == events[0].reasoning and stored[0].source is None
    assert [row.id for row in stored] == [new.id for new in first]


async def test_a_new_trade_is_announced_as_its_stored_row_reads(store: Store) -> None:
    """The announcement of a new trade is serialised from the event (pydantic's serializer, the
    hot path), of a replay from the stored row: both must be the API's same document."""
    writer, sessions = store
    events = [TradeExecuted.model_validate(trade(event_id=f"doc-{i}", **fields)) for i, fields in enumerate([
        {"timestamp": "2024-05-01T14:00:00.123456+02:00", "reasoning": "RSI 超卖; \u2028 \"q\" \\"},
        {"timestamp": "2024-05-01T12:00:01", "source": None, "strategy": None, "fee": 0.125},
        {"price": 1e-7, "quantity": 123456789012345.0, "confidence": 99.5, "action": "sell"},
        # PostgreSQL reads a batch's numbers from their JSON text: each must come back exact.
        {"price": 0.1 + 0.2, "quantity": 5e-324, "fee": 2.2250738585072014e-308, "confidence": 1 / 3},
        {"price": 999999999999999.9, "quantity": 0.007, "fee": 4.35e-7, "timestamp": "0001-01-01T00:00:00Z"},
    ])]
    stored = await writer.insert(events)
    async with sessions() as session:
        rows = {row.id: row for row in (await session.scalars(select(Trade))).all()}
    for new in stored:
        announced = orjson.loads(trade_document(new.id, new.json))
        assert announced == orjson.loads(trade_document(new.id, row_json(rows[new.id])))
        assert list(announced) == ["id", *TRADE_FIELDS, "outcome"]
        assert announced["outcome"] == {"status": None, "realized_pnl": None}


async def test_new_trades_among_replays_get_the_ids_they_were_stored_under(store: Store) -> None:
    """On SQLite the ids of a batch's new rows are worked out, not returned: a batch that is
    partly replays reads them back, and every id must be its own event's row."""
    writer, sessions = store
    events = {name: TradeExecuted.model_validate(trade(event_id=name, price=float(i)))
              for i, name in enumerate("abcdefg", 1)}
    await writer.insert([events["a"], events["c"], events["f"]])
    stored = await writer.insert([events[name] for name in "bacdegf"])
    async with sessions() as session:
        rows = {row.id: row for row in (await session.scalars(select(Trade))).all()}
    assert sorted(new.event.event_id for new in stored) == ["b", "d", "e", "g"]
    assert all(rows[new.id].event_id == new.event.event_id and rows[new.id].price == new.event.price
               for new in stored)


async def test_batches_larger_than_one_statement(store: Store) -> None:
    writer, sessions = store
    total = SQLITE_ROWS_PER_STATEMENT * 2 + 17
    events = [TradeExecuted.model_validate(trade(event_id=f"big-{i}", price=1.0 + i)) for i in range(total)]
    stored = await writer.insert(events)
    assert [new.event.event_id for new in stored] == [e.event_id for e in events]
    assert len({new.id for new in stored}) == total


_REFUSE = {  # a trigger that fails the insert of one event_id: a batch failing in its last statement
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON trades WHEN NEW.event_id = 'big-last' "
               "BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'refused'; END $$",
                   "CREATE TRIGGER refuse BEFORE INSERT ON trades FOR EACH ROW "
                   "WHEN (NEW.event_id = 'big-last') EXECUTE FUNCTION refuse()"],
}


async def test_a_batch_larger_than_one_statement_is_stored_whole_or_not_at_all(store: Store) -> None:
    writer, sessions = store
    events = [TradeExecuted.model_validate(trade(event_id=f"big-{i}")) for i in range(SQLITE_ROWS_PER_STATEMENT * 2)]
    events.append(TradeExecuted.model_validate(trade(event_id="big-last")))
    async with sessions() as session, session.begin():
        for statement in _REFUSE[session.bind.dialect.name]:
            await session.execute(text(statement))
    with pytest.raises(Exception, match="refused"):
        await writer.insert(events)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Trade)) == 0
    assert len(await writer.insert(events[:-1])) == len(events) - 1  # a new connection, and it works


async def test_overlapping_batches_committing_at_once_store_each_trade_once(
    database_url: str, store: Store
) -> None:
    """As ingest does on PostgreSQL (two transactions open at once): a trade redelivered into
    the next batch waits for the first delivery's commit, then is recognised as its replay."""
    writer, sessions = store
    shared = [TradeExecuted.model_validate(trade(event_id=f"both-{i}")) for i in range(50)]
    batches = [[TradeExecuted.model_validate(trade(event_id=f"{name}-{i}")) for i in range(500)] + shared
               for name in ("first", "second")]
    slots = asyncio.Semaphore(write_transactions(database_url))

    async def commit(batch: list[TradeExecuted]) -> list[Notification | Rejection]:
        async with slots:
            return await persist_trades(writer, sessions, lambda: None, batch)

    results = await asyncio.gather(*(commit(batch) for batch in batches))
    notes = [note for answer in results for note in answer]
    assert all(isinstance(note, Notification) for note in notes)
    assert sum(not note.replay for note in notes if isinstance(note, Notification)) == 1050
    assert sum(note.replay for note in notes if isinstance(note, Notification)) == 50
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Trade)) == 1050
