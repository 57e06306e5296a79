"""Fixtures that start the real things: nats-server, SQLite files, PostgreSQL, the hub.

The machinery behind them is in tests/support.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as Nats

from bus.connection import connect
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.nats_server import NatsServer
from tests.support.postgres import PG_ENV, empty_database, fresh_database


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nats-server with JetStream on a free port, shared by the session."""
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Nats]:
    """A client connection; every stream is deleted before the test, so tests never share."""
    client = await connect(nats_url, "test-client")
    js = client.jetstream()
    for name in await js.streams_info():
        await js.delete_stream(str(name.config.name))
    yield client
    await client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session (HUB_TEST_DATABASE_URL names the server)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    with fresh_database(base) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage-facing test runs on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    asyncio.run(empty_database(url))


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied after the test."""
    yield postgres_url
    asyncio.run(empty_database(postgres_url))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file, for tests that need only one backend."""
    return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on, like the machine's own NATS on 4222."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
async def hub(nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str) -> AsyncIterator[Hub]:
    """A hub on SQLite."""
    running = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url))
    yield running
    await running.stop()
