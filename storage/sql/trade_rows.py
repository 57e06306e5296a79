"""Writing and reading live trades."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

import aiosqlite
import orjson
from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from core.api import TradeQuery
from core.errors import BadRequest
from core.events import TRADE_FIELDS, TradeExecuted
from storage.sql.engine import connect_sqlite_autocommit
from storage.sql.models import Trade

SQLITE_ROWS_PER_STATEMENT = 32_000 // len(TRADE_FIELDS)  # under SQLite's 32,766 variables
_STAMP = TRADE_FIELDS.index("timestamp")
_row = attrgetter(*TRADE_FIELDS)
_NOT_STORED = set(TradeExecuted.model_fields) - set(TRADE_FIELDS)  # the envelope: schema_version


class NewTrade(NamedTuple):
    """A trade that was not stored before: its id, its event, and its stored fields as a JSON
    object (stored_json), which its announcement reuses."""

    id: int
    event: TradeExecuted
    json: bytes


def stored_json(event: TradeExecuted) -> bytes:
    """EVENT's stored fields as one JSON object, in TRADE_FIELDS order, times in UTC with Z
    (pydantic's serializer: what PostgreSQL reads a batch from, and the API's Trade fields)."""
    return TradeExecuted.__pydantic_serializer__.to_json(event, exclude=_NOT_STORED)


def row_json(trade: Trade) -> bytes:
    """A stored row's fields as a JSON object, as stored_json writes an event's."""
    return orjson.dumps(dict(zip(TRADE_FIELDS, _row(trade), strict=True)), option=orjson.OPT_UTC_Z)


def _sqlite_values(event: TradeExecuted) -> list[Any]:
    """A row in TRADE_FIELDS order, with the timestamp as the text SQLAlchemy's SQLite DATETIME
    stores: naive UTC, microseconds, space-separated (the first 26 characters of UTC's
    isoformat, cheaper than replace(tzinfo=None): 0.6 µs)."""
    row = list(_row(event))
    row[_STAMP] = event.timestamp.astimezone(timezone.utc).isoformat(" ", "microseconds")[:26]
    return row


@lru_cache(maxsize=32)
def _sqlite_insert_sql(rows: int) -> str:
    values = ",".join(["(" + ",".join("?" * len(TRADE_FIELDS)) + ")"] * rows)
    return f"INSERT INTO trades ({','.join(TRADE_FIELDS)}) VALUES {values} ON CONFLICT (event_id) DO NOTHING"


_SQLITE_NEW_ROWS = "SELECT id, event_id FROM trades WHERE id BETWEEN ? AND ?"


async def _insert_sqlite(connection: aiosqlite.Connection, events: list[TradeExecuted]) -> list[Any]:
    # One multi-row statement per chunk with plain tuples costs a third of what the compiled Core
    # statement costs per row (measured in tests/bench/RESULTS.md). No RETURNING: each row it
    # returns is a step of SQLite's, after which the driver's thread waits for the interpreter.
    # A statement's new rows get consecutive ids (SQLite gives each new row one more than the
    # largest id, and the statement is the only writer while it runs), so a chunk that all went
    # in needs only the last id, and one with replays reads its new rows back. A batch of more
    # than one statement is one transaction all the same.
    several = len(events) > SQLITE_ROWS_PER_STATEMENT
    if several:
        await connection.execute("BEGIN IMMEDIATE")
    found: list[Any] = []
    for start in range(0, len(events), SQLITE_ROWS_PER_STATEMENT):
        chunk = events[start:start + SQLITE_ROWS_PER_STATEMENT]
        params = tuple(chain.from_iterable(map(_sqlite_values, chunk)))
        cursor = await connection.execute(_sqlite_insert_sql(len(chunk)), params)
        inserted, last = cursor.rowcount, cursor.lastrowid or 0  # set by any row inserted
        if inserted == len(chunk):
            found += zip(range(last - inserted + 1, last + 1), (event.event_id for event in chunk))
        elif inserted:
            found += await connection.execute_fetchall(_SQLITE_NEW_ROWS, (last - inserted + 1, last))
    if several:
        await connection.execute("COMMIT")
    return found


# One statement for any number of rows, with one parameter: the batch as a JSON array of
# stored_json objects, which the announcements reuse. Building ten arrays for asyncpg to encode
# cost 6.5-7.7 µs of the hub's CPU per trade; the JSON costs 1.4-1.7, and the server 1 µs more
# (measured in tests/bench/RESULTS.md). PostgreSQL ignores the Z of a timestamp without time
# zone: the times are UTC, as UtcDateTime stores them.
def _postgresql_insert() -> str:
    columns = ",".join(f'"{name}"' for name in TRADE_FIELDS)
    return (f"INSERT INTO trades ({columns}) SELECT {columns} "
            "FROM json_populate_recordset(NULL::trades, $1::json) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id")


_POSTGRESQL_INSERT = _postgresql_insert()


async def _insert_postgresql(connection: AsyncConnection, documents: list[bytes]) -> list[Any]:
    batch = (b"[" + b",".join(documents) + b"]").decode()
    return list((await connection.exec_driver_sql(_POSTGRESQL_INSERT, (batch,))).all())


class TradeWriter:
    """Inserts the trades consumer's batches, skipping event_ids already stored.

    On SQLite through a connection of its own in autocommit: a batch of up to
    SQLITE_ROWS_PER_STATEMENT trades is one statement, its own transaction, and one call into
    the driver's thread (a larger one is wrapped in BEGIN and COMMIT). Through the engine's pool a batch
    took five (cursor, execute, close, commit, the pool's reset), and after each the thread
    waited for the interpreter the busy event loop held: an INSERT took four times as long as
    the same statement alone (tests/bench/RESULTS.md, 2026-12-04). On a failure the connection
    is closed, which rolls back what it held. On PostgreSQL a transaction per batch from the
    pool, several side by side.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()

    async def insert(self, events: Sequence[TradeExecuted]) -> list[NewTrade]:
        """The new rows of EVENTS (the first of each event_id), in id order."""
        unique: dict[str, TradeExecuted] = {}
        for event in events:
            unique.setdefault(event.event_id, event)  # first occurrence wins; order is kept
        if not unique:
            return []
        documents = dict(zip(unique, map(stored_json, unique.values()), strict=True))
        if self._engine.dialect.name == "sqlite":
            rows = await self._insert_sqlite(list(unique.values()))
        else:
            async with self._engine.begin() as connection:
                rows = await _insert_postgresql(connection, list(documents.values()))
        return sorted(NewTrade(row_id, unique[event_id], documents[event_id]) for row_id, event_id in rows)

    async def _insert_sqlite(self, events: list[TradeExecuted]) -> list[Any]:
        async with self._opening:
            if self._sqlite is None:
                self._sqlite = await connect_sqlite_autocommit(self._engine.url)
            connection = self._sqlite
        try:
            return await _insert_sqlite(connection, events)
        except BaseException:
            await self.close()  # whatever state it is in, the next batch gets a new connection
            raise

    async def close(self) -> None:
        """Close SQLite's connection, if open; the next insert opens another."""
        if self._sqlite is not None:
            connection, self._sqlite = self._sqlite, None
            await connection.close()


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
