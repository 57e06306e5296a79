"""The knowledge base on the bus: index requests, and search as NATS request/reply.

The indexer is blocking (embedding, Chroma, SQLite FTS5), so every call goes to a thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from bus.codec import describe
from bus.consumer import Notification
from core.errors import HubError
from core.events import IndexRequested
from core.knowledge import SearchRequest, SearchResponse
from core.subjects import KNOWLEDGE_SEARCH, persisted_subject
from storage.knowledge import KnowledgeIndexer

log = logging.getLogger(__name__)


def run_index_request(indexer: KnowledgeIndexer, event: IndexRequested) -> dict[str, Any]:
    """Carry out one request: documents written and indexed, named paths and domains, or all."""
    parts: dict[str, Any] = {}
    if event.documents:
        parts["documents"] = indexer.add_documents(event.documents).as_dict()
    if event.paths:
        parts["paths"] = indexer.index_paths(event.paths).as_dict()
    if event.domains or not (event.documents or event.paths):
        parts["domains"] = indexer.index_all(event.domains or None).as_dict()
    return {"event_id": event.event_id, **parts}


async def index_requested(
    indexer: KnowledgeIndexer, events: Sequence[IndexRequested]
) -> list[Notification]:
    """Handle a batch of IndexRequested; each result is announced on hub.persisted.knowledge."""
    notes = []
    for event in events:
        try:
            result = await asyncio.to_thread(run_index_request, indexer, event)
        except HubError as error:  # e.g. a path that escapes the folder: answered, not retried
            result = {"event_id": event.event_id, "error": str(error)}
        notes.append(Notification(persisted_subject("knowledge"), orjson.dumps(result)))
    return notes


class SearchResponder:
    """Answers knowledge.search requests; instances share a queue group, so one answers each."""

    def __init__(self, nc: Nats, indexer: KnowledgeIndexer) -> None:
        self.nc = nc
        self.indexer = indexer
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe in the hub's queue group."""
        self._sub = await self.nc.subscribe(KNOWLEDGE_SEARCH, queue="trade-hub", cb=self._answer)

    async def stop(self) -> None:
        """Stop answering."""
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = SearchRequest.model_validate(orjson.loads(msg.data))
            hits = await asyncio.to_thread(self.indexer.search, request.query, request.domain, request.k)
            body = SearchResponse(results=hits).model_dump_json().encode()
        except orjson.JSONDecodeError as error:
            body = orjson.dumps({"error": "invalid_request", "message": f"not JSON: {error}"})
        except ValidationError as error:
            body = orjson.dumps({"error": "invalid_request", "message": describe(error)})
        except HubError as error:
            body = orjson.dumps({"error": "bad_request", "message": str(error)})
        except Exception:
            log.exception("knowledge search failed")
            body = orjson.dumps({"error": "internal_error", "message": "search failed; see the hub's log"})
        await msg.respond(body)


class IndexFollower:
    """Keeps this instance's index in step with index events any instance handled.

    Instances share the knowledge folder (and usually a Chroma server), but each keeps its own
    lexical index, and the durable consumer hands an index event to one instance only. So on
    every hub.persisted.knowledge announcement each instance runs an incremental pass: it finds
    what another instance wrote, and nothing at all on the instance that did the work. Passes
    asked for while one runs are folded into one more.
    """

    def __init__(self, nc: Nats, indexer: KnowledgeIndexer) -> None:
        self.nc = nc
        self.indexer = indexer
        self._sub: Subscription | None = None
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen to the announcements of every instance."""
        self._sub = await self.nc.subscribe(persisted_subject("knowledge"), cb=self._changed)

    async def stop(self) -> None:
        """Stop listening; a pass under way is let finish (a thread cannot be cancelled)."""
        if self._sub is not None:
            await self._sub.unsubscribe()
        self._pending = False
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _changed(self, _msg: Msg) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._catch_up(), name="knowledge-follow")

    async def _catch_up(self) -> None:
        while self._pending:
            self._pending = False
            try:
                stats = await asyncio.to_thread(self.indexer.index_all)
            except HubError as error:
                log.warning("knowledge index not brought up to date: %s", error)
                continue
            if stats.added or stats.updated or stats.deleted:
                log.info("knowledge index brought up to date: %s", stats.as_dict())
