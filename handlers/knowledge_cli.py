"""`main.py index` and `main.py search`: through the running hub if there is one, else locally.

Two processes must not share one embedded Chroma folder, so when the daemon runs these
commands ask it over NATS instead of opening the store themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

import orjson

from bus.codec import encode
from bus.connection import connect_hub, read_state
from core.errors import HubError
from core.events import IndexRequested
from core.knowledge import SearchRequest, SearchResponse
from core.settings import Settings
from core.subjects import KNOWLEDGE_INDEX, KNOWLEDGE_SEARCH, persisted_subject
from storage.knowledge import KnowledgeIndexer


def _hub_url(settings: Settings) -> str | None:
    if settings.nats_url:
        return settings.nats_url
    state = read_state(settings.state_file)
    return None if state is None else str(state["nats_url"])


def _progress(domain: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r{domain:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
    sys.stderr.write("\n" if done >= total else "")
    sys.stderr.flush()


def render_stats(stats: dict[str, Any]) -> str:
    """The summary table of one indexing run."""
    chunks = stats.get("chunks", {})
    lines = [f"{'domain':<12} {'chunks':>7}", f"{'-' * 12} {'-' * 7}"]
    lines += [f"{domain:<12} {count:>7}" for domain, count in chunks.items()]
    counts = ("added", "updated", "unchanged", "deleted")
    lines.append("files: " + ", ".join(f"{stats.get(what, 0)} {what}" for what in counts)
                 + f"; {stats.get('chunks_embedded', 0)} chunks embedded in {stats.get('seconds', 0):.1f} s")
    for skipped in stats.get("skipped", []):
        lines.append(f"skipped {skipped['path']}: {skipped['reason']}")
    return "\n".join(lines)


async def _index_via_hub(settings: Settings, url: str, domains: list[str] | None) -> dict[str, Any]:
    nc = await connect_hub(settings, url, "hub-cli")
    try:
        event = IndexRequested(event_id=f"cli-index-{uuid.uuid4()}", domains=domains)
        results = await nc.subscribe(persisted_subject("knowledge"))
        await nc.jetstream().publish(KNOWLEDGE_INDEX, encode(event), headers={"Nats-Msg-Id": event.event_id})
        while True:
            answer: dict[str, Any] = orjson.loads((await results.next_msg(timeout=600)).data)
            if answer.get("event_id") == event.event_id:
                return answer
    finally:
        await nc.drain()


async def index_command(settings: Settings, args: argparse.Namespace) -> None:
    """Index the knowledge base and print what changed."""
    url = _hub_url(settings)
    if url is not None:
        print(f"asking the running hub ({url}) to index…", file=sys.stderr)
        answer = await _index_via_hub(settings, url, args.domain)
        if "error" in answer:
            raise HubError(answer["error"])
        print(render_stats(answer["domains"]))
        return
    stats = await asyncio.to_thread(KnowledgeIndexer(settings).index_all, args.domain, _progress)
    print(render_stats(stats.as_dict()))


async def _search(settings: Settings, request: SearchRequest) -> SearchResponse:
    url = _hub_url(settings)
    if url is None:
        hits = await asyncio.to_thread(KnowledgeIndexer(settings).search, request.query, request.domain, request.k)
        return SearchResponse(results=hits)
    nc = await connect_hub(settings, url, "hub-cli")
    try:
        reply = await nc.request(KNOWLEDGE_SEARCH, request.model_dump_json().encode(), timeout=30)
    finally:
        await nc.drain()
    answer = orjson.loads(reply.data)
    if "error" in answer:
        raise HubError(answer["message"])
    return SearchResponse.model_validate(answer)


async def search_command(settings: Settings, args: argparse.Namespace) -> None:
    """Print the ranked chunks for a query."""
    response = await _search(settings, SearchRequest(query=args.query, domain=args.domain, k=args.k))
    if not response.results:
        print("no results")
    for rank, hit in enumerate(response.results, 1):
        text = " ".join(hit.text.split())
        print(f"{rank}. [{hit.score:.4f}] {hit.source} — {hit.heading}\n   {text[:300]}{'…' if len(text) > 300 else ''}\n")
