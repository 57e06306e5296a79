"""The loop both background workers (outcomes, reasoning) run: pass after pass, standing aside
while ingest catches up, resting when idle, and handing their lease over when they stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.sql.leases import release

log = logging.getLogger(__name__)
# While the trades consumer is behind (the stream holds a batch or more it has not fetched) a
# worker waits: ingest and the workers share one interpreter, and the backlog must drain at the
# rate of a bare consumer. The workers lag meanwhile, and catch up once ingest has caught up.
YIELD_SECONDS = 0.5
IDLE_SECONDS = 1.0  # an idle worker looks again after this, or when woken
# A row whose commit came later than GAP_WAIT after its id was given out sits below a worker's
# checkpoint: every so often a pass reads below it too, so the row is handled all the same.
SWEEP_SECONDS = 300.0


@dataclass
class Pacing:
    """When a worker runs its next pass; wake() after each commit of trades."""

    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _ingest_busy_until: float = 0.0
    stopping: bool = False
    sweep_every: float = SWEEP_SECONDS
    _swept_at: float = field(default_factory=time.monotonic)

    def sweep_due(self) -> bool:
        """Whether this pass should also look below the checkpoint (then not again for a while)."""
        if time.monotonic() - self._swept_at < self.sweep_every:
            return False
        self._swept_at = time.monotonic()
        return True

    def wake(self, behind: bool) -> None:
        """New trades are committed; BEHIND: the trades consumer has a backlog to catch up on."""
        if behind:
            self._ingest_busy_until = time.monotonic() + YIELD_SECONDS
        self._wake.set()

    def stop(self) -> None:
        """Finish the pass in hand, then return from run()."""
        self.stopping = True
        self._wake.set()

    async def run(self, run_pass: Callable[[], Awaitable[bool]], failed: Callable[[], None],
                  sessions: async_sessionmaker[Any], lease: str, holder: str,
                  finish: Callable[[], Awaitable[None]] | None = None) -> None:
        """RUN_PASS until stopped (FAILED after one that raised), then FINISH the work a pass
        left running, then give LEASE up."""
        while not self.stopping:
            while (wait := self._ingest_busy_until - time.monotonic()) > 0 and not self.stopping:
                await asyncio.sleep(wait)
            try:
                more = await run_pass()
            except Exception:
                log.exception("%s pass failed; trying again", lease)
                failed()
                more = False
            if not more and not self.stopping:
                self._wake.clear()
                try:  # a timeout scope, not wait_for: no task is made for each idle second
                    async with asyncio.timeout(IDLE_SECONDS):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        try:
            if finish is not None:
                await finish()
        except Exception:
            log.exception("%s: the last pass's work did not finish; the next holder redoes it", lease)
        try:
            async with sessions() as session, session.begin():
                await release(session, lease, holder)
        except Exception as error:  # e.g. the database is away: the lease simply expires
            log.warning("%s lease not handed over (%s); it expires on its own", lease, error)
