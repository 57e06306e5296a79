"""Writing and reading live trades."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.api import TradeQuery
from core.errors import BadRequest
from core.events import TRADE_FIELDS, TradeExecuted
from storage.sql.models import Trade

SQLITE_ROWS_PER_STATEMENT = 32_000 // len(TRADE_FIELDS)  # under SQLite's 32,766 variables
_STAMP = TRADE_FIELDS.index("timestamp")
_row = attrgetter(*TRADE_FIELDS)


def _values(event: TradeExecuted, stamp: Any) -> list[Any]:
    """A row in TRADE_FIELDS order, with the timestamp as the dialect wants it."""
    row = list(_row(event))
    row[_STAMP] = stamp
    return row


def _naive_utc(event: TradeExecuted) -> datetime:
    return event.timestamp.astimezone(timezone.utc).replace(tzinfo=None)  # as UtcDateTime stores it


def _sqlite_values(event: TradeExecuted) -> list[Any]:
    # The text SQLAlchemy's SQLite DATETIME stores: naive UTC, microseconds, space-separated;
    # the first 26 characters of UTC's isoformat, cheaper than replace(tzinfo=None) (0.6 µs).
    stamp = event.timestamp.astimezone(timezone.utc).isoformat(" ", "microseconds")[:26]
    return _values(event, stamp)


@lru_cache(maxsize=32)
def _sqlite_insert_sql(rows: int) -> str:
    values = ",".join(["(" + ",".join("?" * len(TRADE_FIELDS)) + ")"] * rows)
    return f"INSERT INTO trades ({','.join(TRADE_FIELDS)}) VALUES {values} ON CONFLICT (event_id) DO NOTHING"


_SQLITE_NEW_ROWS = "SELECT id, event_id FROM trades WHERE id BETWEEN ? AND ?"


async def _insert_sqlite(connection: AsyncConnection, events: list[TradeExecuted]) -> list[Any]:
    # The hot path of ingest: one multi-row statement per chunk with plain tuples costs a third
    # of what the compiled Core statement costs per row (measured in tests/bench/RESULTS.md).
    # No RETURNING: each row it returns is a step of SQLite's, after which its thread waits for
    # the GIL the busy event loop holds. A statement's new rows get consecutive ids (SQLite
    # gives each new row one more than the largest id; the transaction is the only writer), so
    # a chunk that all went in needs only the last id, and one with replays reads its new rows.
    found: list[Any] = []
    for start in range(0, len(events), SQLITE_ROWS_PER_STATEMENT):
        chunk = events[start:start + SQLITE_ROWS_PER_STATEMENT]
        params = tuple(chain.from_iterable(map(_sqlite_values, chunk)))
        result = await connection.exec_driver_sql(_sqlite_insert_sql(len(chunk)), params)
        inserted, last = result.rowcount, result.lastrowid
        if inserted == len(chunk):
            found += zip(range(last - inserted + 1, last + 1), (event.event_id for event in chunk))
        elif inserted:
            new_rows = await connection.exec_driver_sql(_SQLITE_NEW_ROWS, (last - inserted + 1, last))
            found += new_rows.all()
    return found


# One statement for any number of rows: a column per array parameter, so asyncpg prepares it
# once and sends each batch as ten arrays (a quarter of the hub's CPU went into building the
# compiled Core INSERT row by row; measured in tests/bench/RESULTS.md).
def _postgresql_insert() -> str:
    columns, dialect = Trade.__table__.columns, postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(f"${i}::{columns[name].type.compile(dialect)}[]"
                       for i, name in enumerate(TRADE_FIELDS, 1))
    return (f"INSERT INTO trades ({','.join(TRADE_FIELDS)}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id")


_POSTGRESQL_INSERT = _postgresql_insert()


async def _insert_postgresql(connection: AsyncConnection, events: list[TradeExecuted]) -> list[Any]:
    rows = (_values(event, _naive_utc(event)) for event in events)
    columns = tuple(list(column) for column in zip(*rows, strict=True))
    return list((await connection.exec_driver_sql(_POSTGRESQL_INSERT, columns)).all())


async def insert_trades(
    session: AsyncSession, events: Sequence[TradeExecuted]
) -> list[tuple[int, TradeExecuted]]:
    """Insert EVENTS, skipping event_ids already stored; returns (id, event) of the new rows."""
    unique: dict[str, TradeExecuted] = {}
    for event in events:
        unique.setdefault(event.event_id, event)  # first occurrence wins; order is kept
    if not unique:
        return []
    connection = await session.connection()
    insert = _insert_sqlite if connection.dialect.name == "sqlite" else _insert_postgresql
    rows = await insert(connection, list(unique.values()))
    return sorted((row_id, unique[event_id]) for row_id, event_id in rows)


async def stored_trades(session: AsyncSession, event_ids: set[str]) -> dict[str, Trade]:
    """The stored trades with these event_ids, by event_id."""
    rows = await session.scalars(select(Trade).where(Trade.event_id.in_(event_ids)))
    return {trade.event_id: trade for trade in rows}


async def get_trade(session: AsyncSession, trade_id: int) -> Trade | None:
    """The trade with TRADE_ID, or None."""
    return await session.get(Trade, trade_id)


def encode_cursor(trade: Trade) -> str:
    """Opaque position after TRADE in newest-first order."""
    raw = f"{trade.timestamp.isoformat()}|{trade.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (timestamp, id) a cursor stands for; BadRequest if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, trade_id = raw.rsplit("|", 1)
        return datetime.fromisoformat(stamp), int(trade_id)
    except ValueError as error:
        raise BadRequest("cursor is not valid; pass next_cursor of a previous page") from error


def _filtered(query: TradeQuery) -> Select[Trade]:
    statement = select(Trade)
    for column in ("asset", "action", "source", "strategy"):
        if (value := getattr(query, column)) is not None:
            statement = statement.where(getattr(Trade, column) == value)
    if query.since is not None:
        statement = statement.where(Trade.timestamp >= query.since)
    if query.until is not None:
        statement = statement.where(Trade.timestamp < query.until)
    if query.after_id is not None:
        statement = statement.where(Trade.id > query.after_id)
    return statement


async def list_trades(session: AsyncSession, query: TradeQuery) -> tuple[list[Trade], str | None]:
    """A page of trades matching QUERY, newest first, and the cursor of the next page."""
    statement = _filtered(query).order_by(Trade.timestamp.desc(), Trade.id.desc())
    if query.cursor:
        statement = statement.where(tuple_(Trade.timestamp, Trade.id) < decode_cursor(query.cursor))
    statement = statement.offset(query.offset).limit(query.limit + 1)
    trades = list((await session.scalars(statement)).all())
    more = len(trades) > query.limit
    trades = trades[: query.limit]
    return trades, encode_cursor(trades[-1]) if more else None
