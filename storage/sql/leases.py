"""Leases: exactly one instance runs a background worker at a time, and it keeps a checkpoint.

A lease is a row naming its holder and when it expires. Taking it is one conditional UPDATE
(free, expired, or already ours), so two instances cannot both win; the holder renews it on
every pass and re-checks it in the transaction that writes its results, so an instance that
lost it (paused past the expiry) writes nothing.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.sql.models import WorkerLease


async def take_lease(session: AsyncSession, name: str, holder: str, seconds: float) -> bool:
    """Take or renew NAME for HOLDER for SECONDS; whether HOLDER has it now."""
    now = time.time()
    taken = await session.execute(
        update(WorkerLease)
        .where(WorkerLease.name == name,
               (WorkerLease.holder == holder) | (WorkerLease.expires_at < now))
        .values(holder=holder, expires_at=now + seconds))
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    if await session.get(WorkerLease, name) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(WorkerLease(name=name, holder=holder, expires_at=now + seconds, watermark=0))
    except IntegrityError:  # another instance made it first
        return False
    return True


async def watermark(session: AsyncSession, name: str) -> int:
    """Every id up to this one is done."""
    return int(await session.scalar(select(WorkerLease.watermark).where(WorkerLease.name == name)) or 0)


async def advance(session: AsyncSession, name: str, to: int) -> None:
    """Move the checkpoint forward (never back)."""
    await session.execute(update(WorkerLease).where(WorkerLease.name == name, WorkerLease.watermark < to)
                          .values(watermark=to))
