"""REST views of the knowledge base: what it holds, search, and indexing for scripts."""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiohttp import web

from core.knowledge import IndexBody, KnowledgeOverview, KnowledgeSearchQuery, SearchResponse
from core.subjects import persisted_subject
from handlers.http.keys import INDEXER, NATS
from handlers.http.responses import json_response, parse_body, parse_query


async def get_knowledge(request: web.Request) -> web.Response:
    """GET /api/knowledge: every domain with its file and chunk counts."""
    domains = await asyncio.to_thread(request.app[INDEXER].overview)
    return json_response(KnowledgeOverview(domains=domains))


async def search_knowledge(request: web.Request) -> web.Response:
    """GET /api/knowledge/search?q=…&domain=…&k=…: ranked chunks, best first."""
    search = parse_query(KnowledgeSearchQuery, request).as_request()
    hits = await asyncio.to_thread(request.app[INDEXER].search, search.query, search.domain, search.k)
    return json_response(SearchResponse(results=hits))


async def index_knowledge(request: web.Request) -> web.Response:
    """POST /api/knowledge/index: an incremental pass by this instance, which holds the store
    (how KnowledgeIndexer().index_all() in a script works beside the daemon)."""
    body = await parse_body(IndexBody, request)
    stats = await asyncio.to_thread(request.app[INDEXER].index_all, body.domains)
    # Announced like an index event's result, so the other instances re-sync their indexes.
    done = {"event_id": f"http-index-{uuid.uuid4()}", "domains": stats.as_dict()}
    await request.app[NATS].publish(persisted_subject("knowledge"), orjson.dumps(done))
    return json_response(stats)
