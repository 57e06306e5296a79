"""Fixtures that start the real things: nats-server, SQLite files, PostgreSQL, the hub."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as Nats
from sqlalchemy.engine import make_url

from bus.connection import connect
from bus.embedded import find_binary, free_port, write_config
from core.settings import Settings
from main import build_app

PG_ENV = "HUB_TEST_DATABASE_URL"


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something listens on 127.0.0.1:PORT."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nats-server with JetStream on a free port, shared by the session."""
    store = tmp_path_factory.mktemp("nats")
    port = free_port()
    config = write_config(store, "127.0.0.1", port, 32 * 1024 * 1024)
    process = subprocess.Popen([find_binary(), "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield f"nats://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Nats]:
    """A client connection; every stream is deleted before the test, so tests never share."""
    client = await connect(nats_url, "test-client")
    js = client.jetstream()
    for name in await js.streams_info():
        await js.delete_stream(str(name.config.name))
    yield client
    await client.close()


async def _create_pg_database(base_url: str) -> str:
    import asyncpg

    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    url = make_url(base_url)
    connection = await asyncpg.connect(user=url.username, password=url.password,
                                       host=url.host, port=url.port or 5432, database="postgres")
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(url_text: str) -> None:
    import asyncpg

    url = make_url(url_text)
    connection = await asyncpg.connect(user=url.username, password=url.password,
                                       host=url.host, port=url.port or 5432, database="postgres")
    await connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session (HUB_TEST_DATABASE_URL names the server)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    url = asyncio.run(_create_pg_database(base))
    yield url
    asyncio.run(_drop_pg_database(url))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage-facing test runs on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    asyncio.run(_truncate_pg(url))


async def _truncate_pg(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as connection:
        tables = (await connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"))).scalars().all()
        if tables:
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied after the test."""
    yield postgres_url
    asyncio.run(_truncate_pg(postgres_url))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file, for tests that need only one backend."""
    return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"


def hub_settings(tmp_path: Path, nats_url: str, database_url: str, **overrides: Any) -> Settings:
    """Settings of a hub isolated in TMP_PATH (with an empty knowledge folder unless given)."""
    overrides.setdefault("knowledge_dir", tmp_path / "knowledge")
    return Settings(data_dir=tmp_path / "data", logs_dir=tmp_path / "logs",
                    database_url=database_url, nats_url=nats_url, **overrides)


@dataclass
class Hub:
    """A running hub app and an HTTP client for it."""

    settings: Settings
    http: TestClient  # type: ignore[type-arg]

    @property
    def app(self) -> Any:
        return self.http.app

    async def stop(self) -> None:
        await self.http.close()


async def start_hub(settings: Settings) -> Hub:
    """Start the hub's aiohttp app (all its resources) on a free loopback port."""
    client = TestClient(TestServer(build_app(settings), host="127.0.0.1"))
    await client.start_server()
    return Hub(settings, client)


@pytest.fixture
async def hub(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub on SQLite."""
    running = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url))
    yield running
    await running.stop()
