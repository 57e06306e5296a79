"""The HTTP routes, in one table: each row is a view and what the OpenAPI document says of it."""

from __future__ import annotations

from aiohttp import web

from core.api import (
    BacktestDetail, BacktestPage, BacktestQuery, CurveQuery, Health, TradeOut, TradePage,
    TradeQuery,
)
from core.calibration import Calibration
from core.decisions import DecisionPage, DecisionSearch, RecallRequest, SimilarDecisions, SimilarQuery
from core.knowledge import (
    IndexBody, IndexStats, KnowledgeOverview, KnowledgeSearchQuery, SearchResponse,
)
from core.performance import (
    BacktestCalibrationQuery, CalibrationQuery, GroupFilter, PerformancePage, PerformanceQuery,
    PnlQuery, PnlSeries, PositionsPage, StrategyComparison, StrategyQuery,
)
from handlers.http import (
    backtest_views, decision_views, hub_views, knowledge_views, outcome_views, trade_views,
)
from handlers.http.dashboard import add_dashboard_routes
from handlers.http.keys import WS_HUB
from handlers.http.openapi import Endpoint, openapi_document
from handlers.http.responses import json_response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """GET /ws: the live stream of persisted events."""
    return await request.app[WS_HUB].handle(request)


async def get_openapi(request: web.Request) -> web.Response:
    """GET /api/openapi.json: the OpenAPI 3.1 document, generated from this table."""
    return json_response(openapi_document(tuple(ENDPOINTS)))


AUTH, BAD, MISSING, INVALID = 401, 400, 404, 422
ENDPOINTS = [
    Endpoint("/api/health", hub_views.get_health, "NATS, database and consumer state",
             answer=Health),
    Endpoint("/api/openapi.json", get_openapi, "This document"),
    Endpoint("/api/schemas", hub_views.get_schemas, "JSON Schemas of the bus events, by name",
             errors=(AUTH,)),
    Endpoint("/api/schemas/{name}", hub_views.get_schema, "One event's JSON Schema",
             errors=(AUTH, MISSING)),
    Endpoint("/api/trades", trade_views.get_trades, "Trades, newest first", TradeQuery,
             TradePage, (BAD, AUTH, INVALID)),
    Endpoint(r"/api/trades/{id:\d+}", trade_views.get_trade_by_id, "One trade", answer=TradeOut,
             errors=(AUTH, MISSING)),
    Endpoint("/api/trades/search", decision_views.search_decisions,
             "Trades whose reasoning matches q (by words and by meaning), best first",
             DecisionSearch, DecisionPage, (BAD, AUTH, INVALID)),
    Endpoint(r"/api/trades/{id:\d+}/similar", decision_views.similar_decisions,
             "Earlier trades reasoned most like this one, and how they turned out", SimilarQuery,
             SimilarDecisions, (BAD, AUTH, MISSING, INVALID)),
    Endpoint("/api/trades/recall", decision_views.recall_decisions,
             "Before trading: what happened the last times a trade was reasoned like this draft",
             answer=SimilarDecisions, errors=(BAD, AUTH, INVALID), method="POST", body=RecallRequest),
    Endpoint("/api/trades/recall", decision_views.recall_decisions,
             "The same, with the draft in the query string", RecallRequest, SimilarDecisions,
             (BAD, AUTH, INVALID)),
    Endpoint("/api/backtests", backtest_views.get_backtests, "Backtest summaries", BacktestQuery,
             BacktestPage, (BAD, AUTH, INVALID)),
    Endpoint(r"/api/backtests/{id:\d+}", backtest_views.get_backtest_detail,
             "A backtest with metrics, curve and trade log", CurveQuery, BacktestDetail,
             (BAD, AUTH, MISSING, INVALID)),
    Endpoint(r"/api/backtests/{id:\d+}/report", backtest_views.get_backtest_report,
             "The backtest's report file", errors=(AUTH, MISSING)),
    Endpoint("/api/performance", outcome_views.get_performance,
             "Realized performance per group of live trades", PerformanceQuery, PerformancePage,
             (BAD, AUTH, INVALID)),
    Endpoint("/api/performance/pnl", outcome_views.get_pnl_series,
             "Cumulative realized PnL per hour or day", PnlQuery, PnlSeries, (BAD, AUTH, INVALID)),
    Endpoint("/api/positions", outcome_views.get_positions, "Open positions per group",
             GroupFilter, PositionsPage, (BAD, AUTH, INVALID)),
    Endpoint("/api/calibration", outcome_views.get_calibration,
             "Does confidence predict the outcome of closed entries?", CalibrationQuery,
             Calibration, (BAD, AUTH, INVALID)),
    Endpoint(r"/api/backtests/{id:\d+}/calibration", outcome_views.get_backtest_calibration,
             "The same calibration, of a backtest's trade log", BacktestCalibrationQuery,
             Calibration, (BAD, AUTH, MISSING, INVALID)),
    Endpoint("/api/strategies/{name}", outcome_views.get_strategy,
             "A strategy's backtest beside its live trading, and the differences", StrategyQuery,
             StrategyComparison, (BAD, AUTH, MISSING, INVALID)),
    Endpoint("/api/knowledge", knowledge_views.get_knowledge,
             "Knowledge domains with file and chunk counts", answer=KnowledgeOverview,
             errors=(AUTH,)),
    Endpoint("/api/knowledge/search", knowledge_views.search_knowledge,
             "Hybrid search of the knowledge base", KnowledgeSearchQuery, SearchResponse,
             (BAD, AUTH, INVALID)),
    Endpoint("/api/knowledge/index", knowledge_views.index_knowledge,
             "Index the knowledge base incrementally (what a script's KnowledgeIndexer uses)",
             answer=IndexStats, errors=(BAD, AUTH, MISSING, INVALID), method="POST", body=IndexBody),
]
# Not JSON API: Prometheus text and the WebSocket upgrade (described in the README).
UNDOCUMENTED = [web.get("/metrics", hub_views.get_metrics), web.get("/ws", websocket)]


def add_routes(app: web.Application) -> None:
    """Register every view on APP."""
    app.router.add_routes([web.route(e.method, e.path, e.view) for e in ENDPOINTS] + UNDOCUMENTED)
    add_dashboard_routes(app)
