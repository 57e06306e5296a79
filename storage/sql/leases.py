"""Leases: exactly one instance runs a background worker at a time, and it keeps a checkpoint.

A lease is a row naming its holder, until when, and a generation that grows whenever the
holder changes. Taking it is one conditional UPDATE (free, expired, or already ours), so two
instances cannot both win. The holder works outside any write transaction, then writes its
results in one short transaction that first renews the lease for the generation it started
with: an instance that lost the lease meanwhile (paused past the expiry) writes nothing.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.sql.models import WorkerLease

L = WorkerLease


async def acquire(session: AsyncSession, name: str, holder: str, seconds: float) -> int | None:
    """Take or renew NAME for HOLDER; the generation it holds, or None if another holds it."""
    now = time.time()
    await session.execute(update(L).where(L.name == name, L.holder == holder)
                          .values(expires_at=now + seconds))
    await session.execute(
        update(L).where(L.name == name, L.holder != holder, L.expires_at < now)
        .values(holder=holder, expires_at=now + seconds, generation=L.generation + 1))
    lease = await session.get(L, name, populate_existing=True)
    if lease is None:
        try:
            async with session.begin_nested():
                session.add(L(name=name, holder=holder, expires_at=now + seconds, watermark=0,
                              generation=1))
        except IntegrityError:  # another instance made it first
            return None
        return 1
    return lease.generation if lease.holder == holder else None


async def renew(session: AsyncSession, name: str, holder: str, generation: int, seconds: float) -> bool:
    """Extend the lease, if HOLDER still holds this GENERATION of it: the fence of a write."""
    renewed = await session.execute(
        update(L).where(L.name == name, L.holder == holder, L.generation == generation)
        .values(expires_at=time.time() + seconds))
    return bool(renewed.rowcount)  # type: ignore[attr-defined]


async def watermark(session: AsyncSession, name: str) -> int:
    """Every id up to this one is done."""
    return int(await session.scalar(select(L.watermark).where(L.name == name)) or 0)


async def advance(session: AsyncSession, name: str, to: int) -> None:
    """Move the checkpoint forward (never back)."""
    await session.execute(update(L).where(L.name == name, L.watermark < to).values(watermark=to))
