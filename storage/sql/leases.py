"""Leases: exactly one instance runs a background worker at a time, and it keeps a checkpoint.

A lease is a row naming its holder, until when, and a generation that grows whenever the
holder changes. Taking it is one conditional UPDATE (free, expired, or already ours), so two
instances cannot both win. The holder works outside any write transaction, then writes its
results in one short transaction that first renews the lease for the generation it started
with: an instance that lost the lease meanwhile (paused past the expiry) writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

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


async def release(session: AsyncSession, name: str, holder: str) -> None:
    """Give NAME up, if HOLDER holds it: an instance that stops hands its work over at once."""
    await session.execute(update(L).where(L.name == name, L.holder == holder).values(expires_at=0.0))


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
    """Move the checkpoint forward (never back); a checkpoint that is not a lease's own row
    (a worker may keep several) is made on its first move, by the lease's holder."""
    moved = await session.execute(update(L).where(L.name == name, L.watermark < to).values(watermark=to))
    if not moved.rowcount and await session.get(L, name) is None:  # type: ignore[attr-defined]
        session.add(L(name=name, holder=None, expires_at=0.0, watermark=to, generation=0))
        await session.flush()


GAP_WAIT = 10.0  # an id still missing after this is a sequence hole, not a commit in flight


@dataclass
class IdFrontier:
    """How far a follower of a table may move its checkpoint. Ids are given out before their
    rows commit (PostgreSQL's sequences), so a missing id may still appear: the checkpoint
    stops before it, until GAP_WAIT has shown it to be a hole that never fills."""

    _holes: dict[int, float] = field(default_factory=dict)  # missing id -> when first missed

    def advance(self, mark: int, ids: Sequence[int]) -> int:
        """The highest id up to which every id is among IDS (or below MARK) or an old hole."""
        now, seen = time.monotonic(), set(ids)
        candidates = range(mark + 1, max(ids, default=mark) + 1)
        for candidate in candidates:  # every gap starts its clock now, not after the one before
            if candidate not in seen:
                self._holes.setdefault(candidate, now)
        for candidate in candidates:
            if candidate not in seen and now - self._holes[candidate] < GAP_WAIT:
                break
            mark = candidate
        self._holes = {i: t for i, t in self._holes.items() if i > mark}
        return mark
