"""PostgreSQL databases of their own for tests and benchmarks, on the server HUB_TEST_DATABASE_URL
(or a benchmark's --database-url) names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

PG_ENV = "HUB_TEST_DATABASE_URL"


async def _admin(url_text: str, sql: str) -> None:
    """Run SQL on the server's `postgres` database (CREATE/DROP DATABASE cannot run in the target)."""
    import asyncpg

    url = make_url(url_text)
    connection = await asyncpg.connect(user=url.username, password=url.password,
                                       host=url.host, port=url.port or 5432, database="postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def create_database(base_url: str, prefix: str = "hub_test") -> str:
    """A new, empty database on BASE_URL's server: its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(base_url, f'CREATE DATABASE "{name}"')
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    """Drop URL's database, whoever is still connected to it."""
    await _admin(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@contextmanager
def fresh_database(base_url: str, prefix: str = "hub_test") -> Iterator[str]:
    """create_database(), dropped afterwards; for callers outside an event loop."""
    url = asyncio.run(create_database(base_url, prefix))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


async def empty_database(url: str) -> None:
    """Empty every table of URL's database but the schema revision, restarting the ids."""
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
