"""REST views of the knowledge base: what it holds, and search."""

from __future__ import annotations

import asyncio

from aiohttp import web

from core.knowledge import KnowledgeOverview, KnowledgeSearchQuery, SearchResponse
from handlers.http import json_response, parse_query
from handlers.keys import INDEXER


async def get_knowledge(request: web.Request) -> web.Response:
    """GET /api/knowledge: every domain with its file and chunk counts."""
    domains = await asyncio.to_thread(request.app[INDEXER].overview)
    return json_response(KnowledgeOverview(domains=domains))


async def search_knowledge(request: web.Request) -> web.Response:
    """GET /api/knowledge/search?q=…&domain=…&k=…: ranked chunks, best first."""
    search = parse_query(KnowledgeSearchQuery, request).as_request()
    hits = await asyncio.to_thread(request.app[INDEXER].search, search.query, search.domain, search.k)
    return json_response(SearchResponse(results=hits))
