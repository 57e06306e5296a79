"""The reasoning worker: makes stored trades' reasoning searchable, in the background.

One instance at a time (the "reasoning" lease) follows the live and the backtest trades in id
order from their checkpoints and records which distinct text each gave (a text seen before
costs a lookup), then embeds the texts not embedded yet, in id order, from a third checkpoint:
a restart resumes where it stopped and never embeds a text twice. Every instance keeps its
own lexical index of the texts in step with the table (cheap: no model), so its searches see
every text by its words at once, and by meaning once embedded. The ingest path never waits:
while the trades consumer is catching up on a backlog the worker stands aside, as the outcome
worker does.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from core.decisions import IndexLag, Kind
from handlers.events.worker_pacing import Pacing
from storage.rag.minilm import F32
from storage.rag.reasoning_index import ReasoningIndex
from storage.sql.leases import IdFrontier, acquire, advance, renew, watermark
from storage.sql.reasoning_rows import lag, map_texts, texts_after, trades_after, unmapped_below

log = logging.getLogger(__name__)
LEASE = "reasoning"  # its watermark: live trades mapped to their texts
CHECKPOINTS: dict[Kind, str] = {"live": LEASE, "backtest": "reasoning.backtests"}
LEASE_SECONDS = 30.0  # longer than one embedding batch takes on a loaded machine


class LeaseLost(Exception):
    """Another instance took the lease during a pass: what this one computed is dropped."""


@dataclass
class ReasoningWorker:
    """Maps and embeds reasoning; wake() after a commit of trades makes it look at once."""

    sessions: async_sessionmaker[Any]
    index: ReasoningIndex
    batch: int = 5000  # trades mapped per pass
    # Texts embedded per pass, beside the last batch's insert and the next batch's read: 0.85-1.03
    # of the embedder's own rate, median 0.94 of six runs (0.87-0.90 with the read after the
    # embedding; tests/bench/RESULTS.md).
    embed_batch: int = 1024
    pacing: Pacing = field(default_factory=Pacing)
    holder: str = field(default_factory=lambda: f"hub-{uuid.uuid4()}")
    mapped: int = 0  # trades this instance mapped
    _storing: asyncio.Task[None] | None = None  # the last embedded batch, going into Chroma
    _storing_through: int = 0  # the last text id of that batch
    _reading: tuple[int, asyncio.Task[list[tuple[int, str]]]] | None = None  # the next batch: after which id
    _frontiers: dict[Kind, IdFrontier] = field(default_factory=lambda: {k: IdFrontier() for k in CHECKPOINTS})

    def wake(self, behind: bool) -> None:
        """New trades are committed: look at once, or stand aside while ingest is BEHIND."""
        self.pacing.wake(behind)

    def stop(self) -> None:
        """Finish the pass in hand, then return from run()."""
        self.pacing.stop()

    @property
    def _vectors_mark(self) -> str:
        """The checkpoint below which every text is embedded, one per collection (precision)."""
        return f"{self.index.collection}.vectors"

    async def run(self) -> None:
        """Pass after pass until stopped; idle, it looks again each second or when woken."""
        await self.pacing.run(self.run_pass, lambda: None, self.sessions, LEASE, self.holder,
                              finish=self.stored)

    async def run_pass(self) -> bool:
        """Bring the lexical index up to date; map and embed one batch if this instance holds
        the lease. Whether more may be waiting."""
        lexical_more = await self.sync_lexical()
        sweep = self.pacing.sweep_due()
        if not sweep and not await self._work_waiting():  # idle: look without writing (no lock)
            return lexical_more
        async with self.sessions() as session, session.begin():
            generation = await acquire(session, LEASE, self.holder, LEASE_SECONDS)
        if generation is None:
            return lexical_more
        if sweep:
            await self._sweep(generation)
        mapped_more = await self._map(generation)
        # Its own new texts are searchable by their words before the pass ends (and before the
        # lag it reports reaches 0), not only from the next pass on.
        lexical_more = await self.sync_lexical() or lexical_more
        embedded_more = await self._embed(generation)
        return lexical_more or mapped_more or embedded_more

    async def sync_lexical(self, limit: int = 5000) -> bool:
        """Add the texts this instance's lexical index lacks; whether more may be waiting."""
        mark = await asyncio.to_thread(self.index.lexical_mark)
        async with self.sessions() as session:
            texts = await texts_after(session, mark, limit)
        if texts:
            await asyncio.to_thread(self.index.add_lexical, texts)
        return len(texts) == limit

    async def lag(self) -> IndexLag:
        """Live trades not searchable by meaning yet, and the age of the oldest."""
        async with self.sessions() as session:
            mapped, embedded = await watermark(session, LEASE), await watermark(session, self._vectors_mark)
            return await lag(session, mapped, embedded)

    async def _work_waiting(self) -> bool:
        async with self.sessions() as session:
            for kind, name in CHECKPOINTS.items():
                if await trades_after(session, kind, await watermark(session, name), 1):
                    return True
            return bool(await texts_after(session, await watermark(session, self._vectors_mark), 1))

    async def _map(self, generation: int) -> bool:
        """Record the texts of the next trades of each kind, fenced by the lease."""
        found: dict[Kind, tuple[int, list[tuple[int, str]], int]] = {}
        async with self.sessions() as session:
            for kind, name in CHECKPOINTS.items():
                mark = await watermark(session, name)
                trades = await trades_after(session, kind, mark, self.batch)
                checkpoint = self._frontiers[kind].advance(mark, [i for i, _ in trades])
                found[kind] = (checkpoint, [t for t in trades if t[0] <= checkpoint], len(trades))
        if not any(trades for _, trades, _ in found.values()):
            return False
        async with self.sessions() as session, session.begin():
            await self._fence(session, generation)
            for kind, (checkpoint, trades, _) in found.items():
                await map_texts(session, kind, trades)
                await advance(session, CHECKPOINTS[kind], checkpoint)
        self.mapped += sum(len(trades) for _, trades, _ in found.values())
        return any(read == self.batch for _, _, read in found.values())

    async def _sweep(self, generation: int) -> None:
        """Map the trades that committed below a checkpoint (slower than GAP_WAIT)."""
        async with self.sessions() as session:
            late = {kind: await unmapped_below(session, kind, await watermark(session, name), self.batch)
                    for kind, name in CHECKPOINTS.items()}
        if not any(late.values()):
            return
        async with self.sessions() as session, session.begin():
            await self._fence(session, generation)
            for kind, trades in late.items():
                await map_texts(session, kind, trades)
        log.info("sweep: mapped %d trades committed below the checkpoint", sum(map(len, late.values())))

    async def _embed(self, generation: int) -> bool:
        """Embed the next texts (in a thread) while the batch before them goes into Chroma and
        the batch after them is read: the embedder waits on neither. The checkpoint moves once
        a batch is stored."""
        texts = await self._texts_to_embed()
        if not texts:
            await self.stored()
            return False
        # Read beside the embedding: after it, beside Chroma's insert, a read took 110-165 ms.
        self._reading = (texts[-1][0], asyncio.create_task(self._texts_after(texts[-1][0])))
        vectors = await asyncio.to_thread(self.index.vectors, texts)
        await self._previous_stored()
        self._storing = asyncio.create_task(self._store(texts, vectors, generation))
        self._storing_through = texts[-1][0]
        return True  # at least one more pass: the one that sees this batch stored

    async def _texts_to_embed(self) -> list[tuple[int, str]]:
        """The batch after the one going into Chroma, or after the checkpoint if none is."""
        if self._storing is None:
            async with self.sessions() as session:
                mark = await watermark(session, self._vectors_mark)
        else:
            mark = self._storing_through
        if self._reading is not None and self._reading[0] == mark:
            reading, self._reading = self._reading[1], None
            return await reading
        await self._drop_reading()  # it read after a batch that then failed to be stored
        return await self._texts_after(mark)

    async def _texts_after(self, mark: int) -> list[tuple[int, str]]:
        async with self.sessions() as session:
            return await texts_after(session, mark, self.embed_batch)

    async def _drop_reading(self) -> None:
        if self._reading is not None:
            reading, self._reading = self._reading[1], None
            reading.cancel()
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()  # retrieved: a failed read of a dropped batch is no error

    async def stored(self) -> None:
        """Wait until the batch going into Chroma is stored and checkpointed (if one is), and
        drop the read of the batch after it; the store's failure (Chroma away, the lease lost)
        is raised here, and the next pass starts again from the checkpoint."""
        await self._drop_reading()
        await self._previous_stored()

    async def _previous_stored(self) -> None:
        storing, self._storing = self._storing, None
        if storing is not None:
            await storing

    async def _store(self, texts: list[tuple[int, str]], vectors: F32, generation: int) -> None:
        await asyncio.to_thread(self.index.store, texts, vectors)
        async with self.sessions() as session, session.begin():
            await self._fence(session, generation)
            await advance(session, self._vectors_mark, texts[-1][0])

    async def _fence(self, session: Any, generation: int) -> None:
        if not await renew(session, LEASE, self.holder, generation, LEASE_SECONDS):
            raise LeaseLost(f"lost the {LEASE} lease during a pass; its results are dropped")
