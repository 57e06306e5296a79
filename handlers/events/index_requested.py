"""Index requests for the knowledge base, and following the index work of other instances.

The indexer is blocking (embedding, Chroma, SQLite FTS5), so every call goes to a thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from nats.aio.msg import Msg

from bus.consumer import Notification
from core.errors import HubError
from core.events import IndexRequested
from core.subjects import KNOWLEDGE_PROGRESS, persisted_subject
from storage.rag.indexer import KnowledgeIndexer
from storage.rag.sync import Progress

log = logging.getLogger(__name__)


Publish = Callable[[str, bytes], Coroutine[Any, Any, None]]


def run_index_request(
    indexer: KnowledgeIndexer, event: IndexRequested, progress: Progress | None = None
) -> dict[str, Any]:
    """Carry out one request: documents written and indexed, named paths and domains, or all."""
    parts: dict[str, Any] = {}
    if event.documents:
        parts["documents"] = indexer.add_documents(event.documents).as_dict()
    if event.paths:
        parts["paths"] = indexer.index_paths(event.paths).as_dict()
    if event.domains or not (event.documents or event.paths):
        parts["domains"] = indexer.index_all(event.domains or None, progress).as_dict()
    return {"event_id": event.event_id, **parts}


def progress_reporter(publish: Publish, event_id: str) -> Progress:
    """A progress callback for the indexer's thread that publishes each step on the loop."""
    loop = asyncio.get_running_loop()

    def report(domain: str, done: int, total: int) -> None:
        step = orjson.dumps({"event_id": event_id, "domain": domain, "done": done, "total": total})
        asyncio.run_coroutine_threadsafe(publish(KNOWLEDGE_PROGRESS, step), loop)

    return report


async def index_requested(
    indexer: KnowledgeIndexer, publish: Publish, events: Sequence[IndexRequested]
) -> list[Notification]:
    """Handle a batch of IndexRequested, reporting progress on hub.progress.knowledge; each
    result is announced on hub.persisted.knowledge."""
    notes = []
    for event in events:
        progress = progress_reporter(publish, event.event_id)
        try:
            result = await asyncio.to_thread(run_index_request, indexer, event, progress)
        except HubError as error:  # e.g. a path that escapes the folder: answered, not retried
            result = {"event_id": event.event_id, "error": str(error)}
        notes.append(Notification(persisted_subject("knowledge"), orjson.dumps(result)))
    return notes


class IndexFollower:
    """Keeps this instance's index in step with index events any instance handled.

    Instances share the knowledge folder (and usually a Chroma server), but each keeps its own
    lexical index, and the durable consumer hands an index event to one instance only. So on
    every hub.persisted.knowledge announcement each instance runs an incremental pass: it finds
    what another instance wrote, and nothing at all on the instance that did the work. Passes
    asked for while one runs are folded into one more.
    """

    def __init__(self, indexer: KnowledgeIndexer) -> None:
        self.indexer = indexer
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Run no more passes; one under way is let finish (a thread cannot be cancelled)."""
        self._pending = False
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def changed(self, _msg: Msg) -> None:
        """hub.persisted.knowledge was heard: schedule a pass (folded into one under way)."""
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
