"""Schema migrations (Alembic) on SQLite and PostgreSQL: each test gets a database of its own."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, Table, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import HubError
from core.events import BacktestCompleted
from handlers.events.backtest_completed import persist_backtest
from storage.sql import migrate
from storage.sql.engine import async_sessions, create_hub_engine
from storage.sql.models import Backtest, BacktestData, BacktestTrade, Base, Trade
from tests.support.hub_app import hub_settings, start_hub
from tests.support.postgres import PG_ENV, create_database, drop_database
from tests.support.processes import main_py, run_program
from tests.support.payloads import trade
from tests.test_backtests import backtest

TABLES = (Trade, Backtest, BacktestTrade, BacktestData)


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, dropped after it."""
    if not (base := os.environ.get(PG_ENV)):
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    url = await create_database(base)
    yield url
    await drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
async def engine(fresh_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_hub_engine(fresh_url)
    yield created
    await created.dispose()


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _indexes(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        found = await connection.run_sync(lambda sync: inspect(sync).get_indexes(table))
    return {str(index["name"]) for index in found}


async def _rows(engine: AsyncEngine, like: dict[str, list[dict[str, Any]]] | None = None
                ) -> dict[str, list[dict[str, Any]]]:
    """Every row of TABLES, in the columns the database has (or those of LIKE's rows)."""
    def read(sync: Connection) -> dict[str, list[dict[str, Any]]]:
        found = {}
        for model in TABLES:
            table = Table(model.__tablename__, MetaData(), autoload_with=sync)
            rows = [dict(row) for row in sync.execute(select(table).order_by(*table.primary_key)).mappings()]
            if like is not None and like[model.__tablename__]:
                rows = [{k: row[k] for k in like[model.__tablename__][0]} for row in rows]
            found[model.__tablename__] = rows
        return found

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def test_the_migrations_build_exactly_the_models_schema(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    assert await migrate.current(engine) == migrate.head()


async def test_downgrade_to_base_and_up_again(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await migrate.downgrade(engine, "0001")
    assert "ix_trades_strategy_time" not in await _indexes(engine, "trades")
    await migrate.downgrade(engine, "base")
    assert await _tables(engine) == {"alembic_version"}
    await migrate.upgrade(engine)
    assert {"trades", "backtests", "backtest_trades", "backtest_data"} <= await _tables(engine)
    assert await migrate.current(engine) == migrate.head()


@pytest.fixture
def scripts_without_0005(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the migration scripts as they were before 0005, in use instead of the real ones."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__", "0005_*"))
    monkeypatch.setattr(migrate, "MIGRATIONS", scripts)
    migrate.head.cache_clear()
    yield scripts
    migrate.head.cache_clear()


async def test_db_revision_writes_the_migration_the_models_need(
    engine: AsyncEngine, scripts_without_0005: Path
) -> None:
    written = await migrate.new_revision(engine, "outcome read paths")
    assert written == scripts_without_0005 / "versions" / "0005_outcome_read_paths.py"
    script = written.read_text()
    assert "down_revision = '0004'" in script and "'ix_trade_outcomes_group_entries'" in script
    assert "sa.Column('open_quantity'" in script and "'open_quantity')" in script.split("def downgrade")[1]
    await migrate.upgrade(engine)  # the new script, run: the schema is the models' again
    assert await migrate.current(engine) == "0005"
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    await migrate.downgrade(engine, "0004")
    async with engine.connect() as connection:
        columns = await connection.run_sync(lambda c: [x["name"] for x in inspect(c).get_columns("outcome_groups")])
    assert "open_quantity" not in columns


async def _legacy_database_with_data(engine: AsyncEngine, logs: Path) -> None:
    """What the hub made before it had migrations: the baseline tables, no alembic_version."""
    await migrate.upgrade(engine, migrate.BASELINE)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE alembic_version"))
    async with engine.begin() as connection:  # the baseline's columns: no fee yet
        await connection.execute(text(
            "INSERT INTO trades (event_id, timestamp, asset, action, price, quantity, reasoning, "
            "confidence, source, strategy) VALUES (:event_id, :timestamp, :asset, :action, :price, "
            ":quantity, :reasoning, :confidence, :source, :strategy)"),
            [{**trade(strategy=f"s{i % 3}", reasoning=f"<b>why</b> '{i}'; DROP TABLE trades"),
              "timestamp": datetime(2024, 5, 1, 12, i)} for i in range(50)])
    event = BacktestCompleted.model_validate(backtest("bt-old"))
    assert await persist_backtest(async_sessions(engine), logs, event) is not None


def _cli(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(tmp_path / "data")}
    return main_py(*args, env=env, timeout=120)


async def test_an_old_database_with_data_is_upgraded_by_the_cli(
    engine: AsyncEngine, fresh_url: str, tmp_path: Path, nats_url: str
) -> None:
    await _legacy_database_with_data(engine, tmp_path / "logs")
    before = await _rows(engine)
    assert await migrate.current(engine) is None

    done = await asyncio.to_thread(_cli, fresh_url, tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert f"schema revision {migrate.head()} (the newest)" in done.stdout
    assert "taking it as revision 0001" in done.stderr  # the log line

    assert await migrate.current(engine) == migrate.head()
    assert await _rows(engine, like=before) == before  # every row as it was, byte for byte
    assert {"ix_trades_strategy_time", "ix_trades_source_time"} <= await _indexes(engine, "trades")
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) == []

    hub = await start_hub(hub_settings(tmp_path, nats_url, fresh_url))  # and the hub serves it
    try:
        page = await (await hub.http.get("/api/trades", params={"strategy": "s1", "limit": 100})).json()
        assert len(page["trades"]) == 17 and {t["strategy"] for t in page["trades"]} == {"s1"}
        assert page["trades"][0]["reasoning"].startswith("<b>why</b>")
        listed = await (await hub.http.get("/api/backtests")).json()
        assert [b["event_id"] for b in listed["backtests"]] == ["bt-old"]
    finally:
        await hub.stop()


async def test_the_hub_upgrades_an_old_schema_when_it_starts(
    engine: AsyncEngine, fresh_url: str, tmp_path: Path, nats_url: str
) -> None:
    await migrate.upgrade(engine, migrate.BASELINE)
    hub = await start_hub(hub_settings(tmp_path, nats_url, fresh_url))
    await hub.stop()
    assert await migrate.current(engine) == migrate.head()


async def test_with_auto_upgrade_off_an_old_schema_is_refused(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine, migrate.BASELINE)
    with pytest.raises(HubError, match=r"revision 0001.*python main.py db upgrade"):
        await migrate.prepare_schema(engine, auto_upgrade=False)
    await migrate.upgrade(engine)
    await migrate.prepare_schema(engine, auto_upgrade=False)  # the newest: nothing to say


async def test_instances_starting_at_once_on_postgresql_migrate_once(fresh_pg_url: str) -> None:
    engines = [create_hub_engine(fresh_pg_url) for _ in range(4)]
    try:  # without the advisory lock, all four try CREATE TABLE trades and three fail
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        assert await migrate.current(engines[0]) == migrate.head()
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


def test_session_local_reads_and_writes_on_both(fresh_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "HUB_DATABASE_URL": fresh_url, "HUB_DATA_DIR": str(tmp_path / "data")}
    done = run_program("session_local_roundtrip", env=env)
    assert done.returncode == 0, done.stderr
    shown, driver = done.stdout.splitlines()
    assert shown == "Trade(id=1, 2024-01-02 00:00:00 SELL 1.5 ETH @ 2300.5, confidence=70.0)"
    assert driver == ("psycopg" if fresh_url.startswith("postgresql") else "pysqlite")
