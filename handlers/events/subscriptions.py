"""The routing table: every subscription the hub makes, one row each.

Durable consumers (JetStream, shared by every instance: each event is handled once), request/
reply subjects (core NATS, in a queue group: any instance answers), and plain listeners (every
instance hears them). A reader learns the hub's whole surface on NATS from this file.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import async_sessionmaker

from bus.consumer import Route
from bus.replies import Listener, Responder
from core.api import HubPing, HubPong
from core.decisions import DecisionSearch, RecallRequest, SimilarRequest
from core.events import BacktestCompleted, IndexRequested, TradeExecuted
from core.knowledge import SearchRequest
from core.performance import CalibrationQuery, GroupFilter, PerformanceQuery, PnlQuery
from core.settings import Settings
from core.subjects import (
    BACKTESTS_COMPLETED, CALIBRATION, DECISION_RECALL, DECISION_SEARCH, DECISION_SIMILAR, HUB_PING,
    KNOWLEDGE_INDEX, KNOWLEDGE_SEARCH, PERFORMANCE, PERSISTED, PNL_SERIES, POSITIONS, TRADES,
    persisted_subject,
)
from handlers.events import outcome_questions as answers
from handlers.events.backtest_completed import persist_backtests
from handlers.events.decision_questions import DecisionMemory
from handlers.events.index_requested import IndexFollower, Publish, index_requested
from handlers.events.knowledge_search import search_knowledge
from handlers.events.trade_executed import check_trade_subject, persist_trades
from storage.rag.indexer import KnowledgeIndexer
from storage.sql.engine import write_transactions
from storage.sql.trade_rows import TradeWriter


@dataclass(frozen=True)
class Subscriptions:
    """The routing table, by kind of subscription."""

    consumers: list[Route]
    responders: list[Responder]
    listeners: list[Listener]


def build_subscriptions(
    settings: Settings, sessions: async_sessionmaker[Any], indexer: KnowledgeIndexer,
    follower: IndexFollower, memory: DecisionMemory, fan_out: Callable[[Msg], Awaitable[None]],
    publish: Publish, trades_stored: Callable[[], None], trade_writer: TradeWriter,
) -> Subscriptions:
    """Every subscription of one hub instance, wired to what handles it."""
    return Subscriptions(
        consumers=[
            Route(name="trades", filter_subject=f"{TRADES}.>", model=TradeExecuted,
                  handler=partial(persist_trades, trade_writer, sessions, trades_stored), check=check_trade_subject,
                  max_bytes=64 * 1024, batch_size=settings.batch_size,
                  commits_in_flight=write_transactions(settings.database_url)),
            Route(name="backtests", filter_subject=BACKTESTS_COMPLETED, model=BacktestCompleted,
                  handler=partial(persist_backtests, sessions, settings.logs_dir),
                  max_bytes=settings.nats_max_payload,
                  batch_size=4),  # each may carry a 100,000-point curve
            Route(name="knowledge", filter_subject=KNOWLEDGE_INDEX, model=IndexRequested,
                  handler=partial(index_requested, indexer, publish), max_bytes=settings.nats_max_payload,
                  batch_size=1),
        ],
        responders=[
            Responder(HUB_PING, HubPing, partial(_pong, settings)),
            Responder(KNOWLEDGE_SEARCH, SearchRequest, partial(search_knowledge, indexer)),
            Responder(PERFORMANCE, PerformanceQuery, partial(answers.answer_performance, sessions)),
            Responder(POSITIONS, GroupFilter, partial(answers.answer_positions, sessions)),
            Responder(PNL_SERIES, PnlQuery, partial(answers.answer_pnl, sessions)),
            Responder(CALIBRATION, CalibrationQuery, partial(answers.answer_calibration, sessions)),
            Responder(DECISION_SEARCH, DecisionSearch, memory.search),
            Responder(DECISION_SIMILAR, SimilarRequest, lambda asked: memory.similar(asked.trade_id, asked)),
            Responder(DECISION_RECALL, RecallRequest, memory.recall),
        ],
        listeners=[
            # Each instance keeps its own lexical index: it re-syncs when any instance indexed.
            Listener(persisted_subject("knowledge"), follower.changed),
            # The WebSocket fan-out: opened only while this instance has WebSocket clients.
            Listener(f"{PERSISTED}.>", fan_out, on_demand=True),
        ],
    )


async def _pong(settings: Settings, _ping: HubPing) -> HubPong:
    return HubPong(pid=os.getpid(), http_url=f"http://{settings.http_host}:{settings.http_port}")
