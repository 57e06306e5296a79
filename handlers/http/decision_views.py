"""REST views of decision memory: search past reasoning, a trade's similar decisions, recall."""

from __future__ import annotations

from aiohttp import web

from core.decisions import DecisionSearch, RecallRequest, SimilarQuery
from handlers.http.keys import MEMORY
from handlers.http.responses import json_response, parse_body, parse_query, path_id


async def search_decisions(request: web.Request) -> web.Response:
    """GET /api/trades/search: trades whose reasoning matches q, best first."""
    query = parse_query(DecisionSearch, request)
    return json_response(await request.app[MEMORY].search(query))


async def similar_decisions(request: web.Request) -> web.Response:
    """GET /api/trades/{id}/similar: earlier trades reasoned most like this one."""
    trade_id = path_id(request, "trade")
    query = parse_query(SimilarQuery, request)
    return json_response(await request.app[MEMORY].similar(trade_id, query))


async def recall_decisions(request: web.Request) -> web.Response:
    """POST /api/trades/recall (JSON body) or GET with the query string: before trading."""
    draft = (await parse_body(RecallRequest, request) if request.method == "POST"
             else parse_query(RecallRequest, request))
    return json_response(await request.app[MEMORY].recall(draft))
