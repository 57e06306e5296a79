"""Schema migrations with Alembic, the same scripts for SQLite and PostgreSQL.

The scripts live in storage/sql/migrations/versions. The hub and `python main.py db …` run them on
a connection of their own engine (Alembic's env.py takes it from the config), so the daemon's
async engine and the scripts' blocking one share the code. On PostgreSQL an advisory lock
held for the transaction lets several instances start at once: the first upgrades, the others
wait and find nothing left to do. A database created before migrations existed (tables, no
alembic_version) is taken as the baseline revision and upgraded from there.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import HubError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema of the hub before migrations
LOCK_KEY = 0x7472_6164_6568_7562  # "tradehub": pg_advisory_xact_lock's key for migrations


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "no migration scripts"
    return revision


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def _adopt_legacy(connection: Connection) -> None:
    tables = set(inspect(connection).get_table_names())
    if "trades" in tables and "alembic_version" not in tables:
        log.info("database without migration history: taking it as revision %s", BASELINE)
        command.stamp(_config(connection), BASELINE)


def _upgrade(connection: Connection, revision: str) -> None:
    _lock(connection)
    _adopt_legacy(connection)
    before = _current(connection)
    command.upgrade(_config(connection), revision)
    if (after := _current(connection)) != before:
        log.info("database schema upgraded from %s to %s", before or "empty", after)


def _downgrade(connection: Connection, revision: str) -> None:
    _lock(connection)
    command.downgrade(_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database's schema to REVISION (the newest by default), in one transaction."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the schema back to REVISION ("base": no tables)."""
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)


def _revision(connection: Connection, message: str) -> Path:
    script = command.revision(_config(connection), message=message, autogenerate=True,
                              rev_id=f"{int(head()) + 1:04d}")
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


async def new_revision(engine: AsyncEngine, message: str) -> Path:
    """Write the script that takes the schema from the newest revision to the models (Alembic's
    autogenerate, against ENGINE's database at the newest revision); returns its path."""
    await upgrade(engine)
    async with engine.connect() as connection:
        return await connection.run_sync(_revision, message)


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision; None when it has no migration history."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def prepare_schema(engine: AsyncEngine, auto_upgrade: bool) -> None:
    """Upgrade the schema, or with AUTO_UPGRADE off check that it is the newest."""
    if auto_upgrade:
        await upgrade(engine)
        return
    if (revision := await current(engine)) != head():
        raise HubError(f"the database schema is at revision {revision or 'none'}, this hub needs "
                       f"{head()}: run `python main.py db upgrade` (or set HUB_DB_AUTO_UPGRADE=true)")


def upgrade_blocking(engine: Engine) -> None:
    """upgrade() for a blocking engine (scripts)."""
    with engine.begin() as connection:
        _upgrade(connection, "head")
