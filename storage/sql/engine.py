"""Database engines and session factories, async for the hub and sync for scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker


# WAL lets REST readers run beside the single writer; NORMAL is crash-safe in WAL mode
# (a process kill loses nothing committed; only power loss can drop the last commits).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)
SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}


def _prepare_sqlite(url: str) -> bool:
    parsed = make_url(url)
    if not parsed.get_backend_name() == "sqlite":
        return False
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return True


def _on_connect_set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


async def connect_sqlite_autocommit(url: URL) -> aiosqlite.Connection:
    """A connection of its own to URL's SQLite file, outside the engine's pool and in autocommit
    (each statement its own transaction), with the hub's pragmas. Close it: its thread keeps
    the process alive."""
    if not url.database or url.database == ":memory:":
        raise ValueError("a connection of its own needs a SQLite file, not an in-memory database")
    connection = await aiosqlite.connect(url.database, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        await connection.execute(pragma)
    return connection


def write_transactions(url: str) -> int:
    """How many write transactions ingest keeps open at once: SQLite has one writer at a time;
    PostgreSQL runs them side by side (one commits while the next executes)."""
    return 1 if make_url(url).get_backend_name() == "sqlite" else 2


def create_hub_engine(url: str) -> AsyncEngine:
    """Async engine for URL; SQLite files get their folder and WAL mode."""
    engine = create_async_engine(url, pool_pre_ping=not _prepare_sqlite(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _on_connect_set_pragmas)
    return engine


def sync_url(url: str) -> str:
    """The blocking driver's URL for the same database (for scripts)."""
    parsed = make_url(url)
    return str(parsed.set(drivername=SYNC_DRIVERS.get(parsed.drivername, parsed.drivername)))


def create_sync_engine(url: str) -> Engine:
    """Blocking engine for the same database as the async URL."""
    engine = create_engine(sync_url(url))
    if _prepare_sqlite(url):
        event.listen(engine, "connect", _on_connect_set_pragmas)
    return engine


def async_sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Session factory the handlers and views use; objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_sessions(engine: Engine) -> sessionmaker[Session]:
    """Session factory for scripts."""
    return sessionmaker(bind=engine, expire_on_commit=False)

