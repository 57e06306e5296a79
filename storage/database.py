"""Script access to the hub's database, the way users write it:

    from storage.database import SessionLocal, Trade
    session = SessionLocal()
    recent = session.query(Trade).order_by(Trade.timestamp.desc()).limit(10).all()
    session.close()

It reads the same HUB_* settings as the daemon, so it opens the daemon's database: SQLite
through sqlite3, PostgreSQL through psycopg (postgresql+asyncpg:// URLs are mapped to it).
Importing it opens nothing: the first SessionLocal() makes the engine and migrates the schema.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from storage.sql.engine import create_sync_engine, sync_sessions
from storage.sql.migrate import upgrade_blocking
from storage.sql.models import Backtest, BacktestTrade, Trade


class LazySessions:
    """A sessionmaker for the settings' database, made on its first call."""

    def __init__(self) -> None:
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()
        self.engine: Engine | None = None

    def __call__(self, **options: Any) -> Session:
        """A new session (the first call opens the engine; a new database gets its tables)."""
        with self._lock:
            if self._sessions is None:
                settings = Settings()
                self.engine = create_sync_engine(settings.database_url)
                if settings.db_auto_upgrade:
                    upgrade_blocking(self.engine)  # a script before the first daemon start
                self._sessions = sync_sessions(self.engine)
        return self._sessions(**options)


SessionLocal = LazySessions()

__all__ = ["Backtest", "BacktestTrade", "SessionLocal", "Trade"]
