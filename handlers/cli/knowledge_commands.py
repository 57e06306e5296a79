"""`main.py index` and `main.py search`: through the running hub if there is one, else locally.

Two processes must not share one embedded Chroma folder, so when a hub answers these commands
ask it over NATS instead of opening the store themselves. Progress is drawn the same way in
both paths: locally from the indexer's callback, through the hub from its progress messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from bus.codec import encode
from bus.replies import ask
from core.errors import HubError
from core.events import IndexRequested
from core.knowledge import SearchRequest, SearchResponse
from core.subjects import KNOWLEDGE_INDEX, KNOWLEDGE_PROGRESS, KNOWLEDGE_SEARCH, persisted_subject
from storage.rag.indexer import KnowledgeIndexer

OpenIndexer = Callable[[], KnowledgeIndexer]
stderr = Console(stderr=True)


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A bar per domain; yields the (domain, done, total) callback that moves them."""
    bars: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("files"))
    with Progress(*columns, console=stderr, transient=False) as progress:

        def update(domain: str, done: int, total: int) -> None:
            if domain not in bars:
                bars[domain] = progress.add_task(domain, total=total)
            progress.update(bars[domain], completed=done, total=total)

        yield update


def render_stats(stats: dict[str, Any]) -> Table:
    """The summary table of one indexing run."""
    counts = ("added", "updated", "unchanged", "deleted")
    caption = (", ".join(f"{stats.get(what, 0)} {what}" for what in counts)
               + f"; {stats.get('chunks_embedded', 0)} chunks embedded in {stats.get('seconds', 0):.1f} s")
    table = Table("domain", "chunks", caption=f"files: {caption}", caption_justify="left")
    for domain, count in stats.get("chunks", {}).items():
        table.add_row(domain, str(count))
    for skipped in stats.get("skipped", []):
        table.add_row(f"skipped {skipped['path']}", skipped["reason"])
    return table


async def _index_via_hub(hub: Nats, domains: list[str] | None) -> dict[str, Any]:
    event = IndexRequested(event_id=f"cli-index-{uuid.uuid4()}", domains=domains)
    results = await hub.subscribe(persisted_subject("knowledge"))
    steps = await hub.subscribe(KNOWLEDGE_PROGRESS)
    with progress_bars() as update:

        async def follow() -> None:
            async for msg in steps.messages:
                step = orjson.loads(msg.data)
                if step.get("event_id") == event.event_id:
                    update(step["domain"], step["done"], step["total"])

        following = asyncio.create_task(follow())
        await hub.jetstream().publish(KNOWLEDGE_INDEX, encode(event),
                                      headers={"Nats-Msg-Id": event.event_id})
        try:
            async for msg in results.messages:  # the hub answered the ping: it is there
                answer: dict[str, Any] = orjson.loads(msg.data)
                if answer.get("event_id") == event.event_id:
                    return answer
        finally:
            following.cancel()
    raise HubError("the hub went away before it answered")


async def index_command(hub: Nats | None, open_indexer: OpenIndexer, domains: list[str] | None) -> None:
    """Index the knowledge base and print what changed."""
    if hub is not None:
        where = hub.connected_url.geturl() if hub.connected_url else "NATS"
        stderr.print(f"asking the running hub ({where}) to index…")
        answer = await _index_via_hub(hub, domains)
        if "error" in answer:
            raise HubError(answer["error"])
        Console().print(render_stats(answer["domains"]))
        return
    with progress_bars() as update:
        stats = await asyncio.to_thread(open_indexer().index_all, domains, update)
    Console().print(render_stats(stats.as_dict()))


async def _search(hub: Nats | None, open_indexer: OpenIndexer, search: SearchRequest) -> SearchResponse:
    if hub is None:
        hits = await asyncio.to_thread(open_indexer().search, search.query, search.domain, search.k)
        return SearchResponse(results=hits)
    return await ask(hub, KNOWLEDGE_SEARCH, search, SearchResponse)


async def search_command(hub: Nats | None, open_indexer: OpenIndexer, search: SearchRequest) -> None:
    """Print the ranked chunks for a query."""
    response = await _search(hub, open_indexer, search)
    if not response.results:
        print("no results")
    for rank, hit in enumerate(response.results, 1):
        text = " ".join(hit.text.split())
        print(f"{rank}. [{hit.score:.4f}] {hit.source} — {hit.heading}\n   {text[:300]}{'…' if len(text) > 300 else ''}\n")
