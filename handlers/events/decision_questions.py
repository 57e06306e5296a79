"""Answers from decision memory — search, similar, recall — the same over REST, NATS and the CLI.

The reasoning index ranks distinct texts; the database turns them into the trades that gave
them, filtered, newest first within a text. Filters can leave few trades behind the top texts,
so the ranking is widened until K trades are found or the index has no more to give.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from core.decisions import (
    Decision, DecisionFilter, DecisionPage, DecisionSearch, IndexLag, Kind, RecallRequest,
    SimilarDecisions, SimilarQuery, summarize,
)
from core.errors import NotFound
from handlers.events.reasoning_worker import ReasoningWorker
from storage.rag.fusion import Ranking
from storage.sql.models import Trade
from storage.sql.reasoning_rows import Before, candidates, decisions, text_of

FIRST_CANDIDATES = 50  # texts asked of the index at first; ×4 each time filters leave too few
MAX_CANDIDATES = 3200


@dataclass
class DecisionMemory:
    """Past decisions by what their reasoning says."""

    sessions: async_sessionmaker[Any]
    worker: ReasoningWorker

    async def search(self, query: DecisionSearch) -> DecisionPage:
        """Trades whose reasoning matches the query, best first."""
        kinds: tuple[Kind, ...] = (query.kind,) if query.kind else ("live", "backtest")
        found, lag = await self._answer(lambda n: self.worker.index.search(query.q, n), query, kinds, query.k)
        return DecisionPage(results=found, index=lag)

    async def similar(self, trade_id: int, query: SimilarQuery) -> SimilarDecisions:
        """The earlier live trades reasoned most like trade TRADE_ID, and how they turned out."""
        async with self.sessions() as session:
            trade = await session.get(Trade, trade_id)
            if trade is None:
                raise NotFound(f"no trade with id {trade_id}")
            stored = await text_of(session, "live", trade_id)
        text_id, text = stored if stored is not None else (None, trade.reasoning)
        same = query.scope == "same_source"
        before = Before(trade.timestamp, trade.id, same_source=same, source=trade.source)
        found, lag = await self._answer(
            lambda n: self.worker.index.similar(text_id, text, n), DecisionFilter(), ("live",),
            query.k, before) if text.strip() else ([], await self.worker.lag())
        return SimilarDecisions(results=found, summary=summarize(found), index=lag)

    async def recall(self, request: RecallRequest) -> SimilarDecisions:
        """What happened the last times a live trade was reasoned like this draft."""
        where = DecisionFilter(asset=request.asset, source=request.source, strategy=request.strategy)
        found, lag = await self._answer(
            lambda n: self.worker.index.search(request.reasoning, n), where, ("live",), request.k)
        return SimilarDecisions(results=found, summary=summarize(found), index=lag)

    async def _answer(self, rank: Any, where: DecisionFilter, kinds: Sequence[Kind], k: int,
                      before: Before | None = None) -> tuple[list[Decision], IndexLag]:
        """_find's decisions and, counted beside them, the index lag every answer carries."""
        return await asyncio.gather(self._find(rank, where, kinds, k, before), self.worker.lag())

    async def _find(self, rank: Any, where: DecisionFilter, kinds: Sequence[Kind], k: int,
                    before: Before | None = None) -> list[Decision]:
        """The top K decisions behind RANK(n)'s texts, widening n until enough are found."""
        n = max(FIRST_CANDIDATES, 4 * k)
        while True:
            ranking: Ranking = await asyncio.to_thread(rank, n)
            found = await self._decisions(ranking, where, kinds, k, before)
            if len(found) >= k or len(ranking) < n or n >= MAX_CANDIDATES:
                return found
            n *= 4

    async def _decisions(self, ranking: Ranking, where: DecisionFilter, kinds: Sequence[Kind], k: int,
                         before: Before | None) -> list[Decision]:
        """The best K: texts by rank, within a text the newest; only those K rows are read whole.

        The texts are asked in growing slices from the top (K texts, then 4× more): once a slice
        holds K trades, no trade of a lower text can be among the best, so most searches read
        the trades of their first K texts only.
        """
        scores = {int(text_id): score for text_id, score in ranking}
        ids, start, size = list(scores), 0, k
        found: list[tuple[Kind, int, int, float]] = []
        async with self.sessions() as session:
            while start < len(ids) and len(found) < k:
                end = start + size
                while end < len(ids) and scores[ids[end]] == scores[ids[end - 1]]:
                    end += 1  # a tie with the slice's last text belongs in the slice
                found += [(kind, *row) for kind in kinds
                          for row in await candidates(session, kind, ids[start:end], where, k, before)]
                start, size = end, size * 4
            found.sort(key=lambda row: (-scores[row[1]], -row[3], -row[2]))
            best = found[:k]
            loaded = {kind: await decisions(session, kind, [row[2] for row in best if row[0] == kind])
                      for kind in kinds}
        return [loaded[kind][trade_id].model_copy(update={"score": scores[text_id]})
                for kind, text_id, trade_id, _ in best if trade_id in loaded[kind]]
