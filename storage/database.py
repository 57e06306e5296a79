"""Script access to the hub's database, the way users write it:

    from storage.database import SessionLocal, Trade
    session = SessionLocal()
    recent = session.query(Trade).order_by(Trade.timestamp.desc()).limit(10).all()
    session.close()

It reads the same HUB_* settings as the daemon, so it opens the daemon's database: SQLite
through sqlite3, PostgreSQL through psycopg (postgresql+asyncpg:// URLs are mapped to it).
"""

from __future__ import annotations

from core.settings import Settings
from storage.engine import create_sync_engine, sync_sessions
from storage.migrate import upgrade_blocking
from storage.models import Trade

_settings = Settings()
engine = create_sync_engine(_settings.database_url)
if _settings.db_auto_upgrade:
    upgrade_blocking(engine)  # a script run before the first daemon start sees empty tables
SessionLocal = sync_sessions(engine)

__all__ = ["SessionLocal", "Trade", "engine"]
