"""The routing table: which events the hub consumes, from where, and what persists them."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from bus.consumer import Route
from core.events import BacktestCompleted, IndexRequested, TradeExecuted
from core.settings import Settings
from core.subjects import BACKTESTS_COMPLETED, KNOWLEDGE_INDEX, TRADES
from handlers.backtests import persist_backtests
from handlers.knowledge import index_requested
from handlers.trades import check_trade_subject, persist_trades
from storage.knowledge import KnowledgeIndexer


def build_routes(
    settings: Settings, sessions: async_sessionmaker[Any], indexer: KnowledgeIndexer
) -> list[Route]:
    """One route per durable consumer; each is shared by every hub instance."""
    return [
        Route(
            name="trades",
            filter_subject=f"{TRADES}.>",
            model=TradeExecuted,
            handler=partial(persist_trades, sessions),
            check=check_trade_subject,
            max_bytes=64 * 1024,
            batch_size=settings.batch_size,
        ),
        Route(
            name="backtests",
            filter_subject=BACKTESTS_COMPLETED,
            model=BacktestCompleted,
            handler=partial(persist_backtests, sessions, settings.logs_dir),
            max_bytes=settings.nats_max_payload,
            batch_size=4,  # each may carry a 100,000-point curve
        ),
        Route(
            name="knowledge",
            filter_subject=KNOWLEDGE_INDEX,
            model=IndexRequested,
            handler=partial(index_requested, indexer),
            max_bytes=settings.nats_max_payload,
            batch_size=1,
        ),
    ]
