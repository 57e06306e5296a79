"""knowledge.search: the knowledge base's hybrid search as NATS request/reply."""

from __future__ import annotations

import asyncio

from core.knowledge import SearchRequest, SearchResponse
from storage.rag.indexer import KnowledgeIndexer


async def search_knowledge(indexer: KnowledgeIndexer, request: SearchRequest) -> SearchResponse:
    """Ranked chunks for REQUEST (the indexer blocks: it runs in a thread)."""
    hits = await asyncio.to_thread(indexer.search, request.query, request.domain, request.k)
    return SearchResponse(results=hits)
