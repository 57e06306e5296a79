"""REST views of live trades, each with its outcome."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from core.api import OutcomeOut, TradeOut, TradePage, TradeQuery
from core.errors import NotFound
from handlers.http.keys import SESSIONS
from handlers.http.responses import json_response, parse_query, path_id
from storage.sql.models import Trade
from storage.sql.outcome_rows import outcomes_of
from storage.sql.trade_rows import get_trade, list_trades


async def with_outcomes(session: AsyncSession, trades: Sequence[Trade]) -> list[TradeOut]:
    """TRADES in the API's schema, with the outcome the worker has found for each so far."""
    known = await outcomes_of(session, [t.id for t in trades])
    documents = []
    for trade in trades:
        document = TradeOut.model_validate(trade)
        if (outcome := known.get(trade.id)) is not None:
            document.outcome = OutcomeOut(status=outcome.status, realized_pnl=outcome.realized_pnl)
        documents.append(document)
    return documents


async def get_trades(request: web.Request) -> web.Response:
    """GET /api/trades: newest first, filtered, paginated by cursor or offset."""
    query = parse_query(TradeQuery, request)
    async with request.app[SESSIONS]() as session:
        trades, next_cursor = await list_trades(session, query)
        page = TradePage(trades=await with_outcomes(session, trades), next_cursor=next_cursor)
    return json_response(page)


async def get_trade_by_id(request: web.Request) -> web.Response:
    """GET /api/trades/{id}."""
    trade_id = path_id(request, "trade")
    async with request.app[SESSIONS]() as session:
        trade = await get_trade(session, trade_id)
        if trade is None:
            raise NotFound(f"no trade with id {trade_id}")
        [document] = await with_outcomes(session, [trade])
    return json_response(document)
