"""Faults while events stream in: the database goes away, logs/ cannot be written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from nats.aio.client import Client as Nats
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from handlers.http.keys import CONSUMERS, SESSIONS
from storage.sql.models import Backtest, Trade
from tests.support.hub_app import Hub, hub_settings, start_hub
from tests.support.nats_server import NatsServer
from tests.support.payloads import publish_raw, publish_trade
from tests.support.waiting import all_acked, count_rows, eventually, rows_are
from tests.test_backtests import backtest


async def test_unwritable_logs_hold_the_backtest_until_its_report_can_be_written(
    nc: Nats, tmp_path: Path, nats_url: str, sqlite_url: str
) -> None:
    logs = tmp_path / "logs"
    logs.write_text("a file where the logs folder should be")
    hub = await start_hub(hub_settings(tmp_path, nats_url, sqlite_url))
    try:
        await publish_raw(nc, "backtests.completed", backtest())
        stats = hub.app[CONSUMERS][1].stats
        await eventually(lambda: stats.failures >= 2, what="the report write failing, retried")
        assert "logs" in (stats.last_error or "")
        info = await nc.jetstream().consumer_info(hub.settings.stream_name, "backtests")
        assert info.num_ack_pending == 1  # held, not acked

        logs.unlink()  # the disk is writable again
        await eventually(lambda: (logs / "backtest_1.json").is_file(), timeout=30,
                         what="the report written on retry")
        await eventually(lambda: all_acked(nc, hub.settings.stream_name, "backtests"),
                         what="the event acked")
        assert await count_rows(hub, Backtest) == 1
    finally:
        await hub.stop()


async def test_postgres_connections_killed_mid_stream_lose_nothing(
    nc: Nats, tmp_path: Path, nats_url: str, pg_url: str
) -> None:
    hub = await start_hub(hub_settings(tmp_path, nats_url, pg_url, batch_size=50))
    url = make_url(pg_url)
    admin = await asyncpg.connect(user=url.username, host=url.host, port=url.port or 5432, database="postgres")
    try:
        total = 3000

        async def stream() -> None:
            for i in range(total):
                await publish_trade(nc, event_id=f"pg-outage-{i}", price=1.0 + i)

        publishing = asyncio.create_task(stream())
        killed = 0
        while not publishing.done():
            killed += len(await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()", url.database))
            await asyncio.sleep(0.2)
        await publishing
        await eventually(lambda: rows_are(hub, Trade, total), timeout=60, what="every trade stored")
        async with hub.app[SESSIONS]() as session:
            distinct = await session.scalar(select(func.count(func.distinct(Trade.event_id))))
        assert distinct == total and killed > 0
    finally:
        await admin.close()
        await hub.stop()




async def test_health_is_degraded_while_an_external_nats_is_away(
    tmp_path: Path, sqlite_url: str
) -> None:
    from bus.connection import connect

    server = NatsServer(tmp_path / "nats", max_payload=1 << 20).start()
    url = server.url
    hub = await start_hub(hub_settings(tmp_path, url, sqlite_url))
    publisher = await connect(url, "test-publisher")
    try:
        for i in range(100):
            await publish_trade(publisher, event_id=f"away-{i}")
        server.kill()
        await eventually(lambda: _status_is(hub, "degraded"), what="degraded while NATS is away")
        assert (await (await hub.http.get("/api/trades?limit=1")).json())["trades"]  # still serving
        server.start()  # the same port and store: the stream and the consumer come back
        await eventually(lambda: _status_is(hub, "ok"), timeout=30, what="ok once NATS is back")
        for i in range(100, 200):
            await publish_trade(publisher, event_id=f"away-{i}")
        await eventually(lambda: rows_are(hub, Trade, 200), timeout=30, what="all 200 stored")
    finally:
        await publisher.close()
        await hub.stop()
        server.kill()


async def _status_is(hub: Hub, status: str) -> bool:
    return bool((await (await hub.http.get("/api/health")).json())["status"] == status)


async def test_sqlite_locked_past_its_busy_timeout_retries_then_stores_everything(
    hub: Hub, nc: Nats, tmp_path: Path
) -> None:
    import sqlite3
    import threading

    database = tmp_path / "hub.db"
    lock = sqlite3.connect(database, timeout=1, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")  # the file is locked for writers (another process, say)
    released = threading.Timer(13.0, lock.rollback)  # longer than the hub's 10 s busy_timeout
    released.start()
    try:
        for i in range(200):
            await publish_trade(nc, event_id=f"locked-{i}")
        stats = hub.app[CONSUMERS][0].stats
        await eventually(lambda: stats.failures >= 1, timeout=20, what="a commit failing on the lock")
        assert "locked" in (stats.last_error or "")
        await eventually(lambda: rows_are(hub, Trade, 200), timeout=60, what="all stored once the lock is gone")
        async with hub.app[SESSIONS]() as session:
            assert await session.scalar(select(func.count(func.distinct(Trade.event_id)))) == 200
    finally:
        released.join()
        lock.close()
