"""REST views of live trades."""

from __future__ import annotations

from aiohttp import web

from core.api import TradeOut, TradePage, TradeQuery
from core.errors import NotFound
from handlers.http.responses import json_response, parse_query, path_id
from handlers.http.keys import SESSIONS
from storage.sql.trade_rows import get_trade, list_trades

async def get_trades(request: web.Request) -> web.Response:
    """GET /api/trades: newest first, filtered, paginated by cursor or offset."""
    query = parse_query(TradeQuery, request)
    async with request.app[SESSIONS]() as session:
        trades, next_cursor = await list_trades(session, query)
    page = TradePage(trades=[TradeOut.model_validate(t) for t in trades], next_cursor=next_cursor)
    return json_response(page)


async def get_trade_by_id(request: web.Request) -> web.Response:
    """GET /api/trades/{id}."""
    trade_id = path_id(request, "trade")
    async with request.app[SESSIONS]() as session:
        trade = await get_trade(session, trade_id)
    if trade is None:
        raise NotFound(f"no trade with id {trade_id}")
    return json_response(TradeOut.model_validate(trade))
