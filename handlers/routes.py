"""The HTTP routes, in one table."""

from __future__ import annotations

from aiohttp import web

from handlers import api_backtests, api_knowledge, api_meta, api_trades
from handlers.dashboard import add_dashboard_routes
from handlers.keys import WS_HUB


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """GET /ws: the live stream of persisted events."""
    return await request.app[WS_HUB].handle(request)


def add_routes(app: web.Application) -> None:
    """Register every view on APP."""
    app.router.add_routes([
        web.get("/api/health", api_meta.get_health),
        web.get("/metrics", api_meta.get_metrics),
        web.get("/api/openapi.json", api_meta.get_openapi),
        web.get("/api/schemas", api_meta.get_schemas),
        web.get("/api/schemas/{name}", api_meta.get_schema),
        web.get("/api/trades", api_trades.get_trades),
        web.get(r"/api/trades/{id:\d+}", api_trades.get_trade_by_id),
        web.get("/api/backtests", api_backtests.get_backtests),
        web.get(r"/api/backtests/{id:\d+}", api_backtests.get_backtest_detail),
        web.get(r"/api/backtests/{id:\d+}/report", api_backtests.get_backtest_report),
        web.get("/api/knowledge", api_knowledge.get_knowledge),
        web.get("/api/knowledge/search", api_knowledge.search_knowledge),
        web.get("/ws", websocket),
    ])
    add_dashboard_routes(app)
