"""Knowledge base: index throughput, re-index with nothing changed, and hybrid search latency.

    .venv/bin/python -m tests.bench.bench_knowledge [--chunks 10000] [--search-chunks 100000]

1. The shipped knowledge/ is copied to a temporary folder and indexed with the real embedder.
2. A synthetic corpus of about --chunks chunks (Markdown files made of the shipped documents'
   sentences) is indexed the same way, then re-indexed with nothing changed.
3. A --search-chunks corpus is written straight into the stores (SQLite chunk table + FTS5,
   and Chroma) with vectors made of real embeddings plus noise: embedding 100,000 chunks
   would take half an hour and is not what is measured. The queries take the real path:
   query embedding, Chroma, FTS5 and fusion, through KnowledgeIndexer.search.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.knowledge import DOMAINS
from core.settings import REPO_ROOT, Settings
from storage.rag.chunking import VERSION as CHUNKER_VERSION
from storage.rag.embedding import Embedder, model_id
from storage.rag.indexer import KnowledgeIndexer
from storage.rag.lexical import FileRecord, StoredChunk
from storage.rag.minilm import F32
from tests.bench.common import percentile

SHIPPED = REPO_ROOT / "knowledge"
CASES = REPO_ROOT / "tests" / "data" / "knowledge_eval.json"
SECTIONS = 20  # chunks per synthetic file: each section is one chunk (under the chunker's 800)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences() -> list[str]:
    """Prose sentences of the shipped documents (headings, tables and code left out)."""
    found = []
    for path in sorted(SHIPPED.rglob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and line[0].isalpha() and not line.startswith("|"):
                found += [s for s in _SENTENCE.split(line) if 40 <= len(s) <= 300]
    return found


def paragraph(rng: random.Random, pool: list[str], size: int = 600) -> str:
    """Random sentences of the pool until about SIZE characters."""
    text = ""
    while len(text) < size:
        text += rng.choice(pool) + " "
    return text.strip()


def write_corpus(root: Path, chunks: int, seed: int = 11) -> None:
    """Markdown files of SECTIONS one-chunk sections each, spread over the domains."""
    rng, pool = random.Random(seed), sentences()
    for n in range((chunks + SECTIONS - 1) // SECTIONS):
        domain = DOMAINS[n % len(DOMAINS)]
        body = [f"# Note {n} on {domain}\n"]
        body += [f"## Part {s}\n\n{paragraph(rng, pool)}\n" for s in range(SECTIONS)]
        (root / domain).mkdir(parents=True, exist_ok=True)
        (root / domain / f"note-{n:05d}.md").write_text("\n".join(body), encoding="utf-8")


def timed_index(indexer: KnowledgeIndexer, label: str) -> None:
    """Index everything, then again with nothing changed; print both."""
    embedder, embedding = indexer.embedder, [0.0]
    embed = embedder.embed

    def timed_embed(texts: Sequence[str], batch_size: int = 32) -> F32:
        started = time.perf_counter()
        try:
            return embed(texts, batch_size)
        finally:
            embedding[0] += time.perf_counter() - started

    embedder.embed = timed_embed  # type: ignore[method-assign]
    started = time.perf_counter()
    stats = indexer.index_all()
    took = time.perf_counter() - started
    embedder.embed = embed  # type: ignore[method-assign]
    print(f"{label}: {stats.chunks_embedded} chunks from {stats.added} files in {took:.1f} s "
          f"= {stats.chunks_embedded / took:.1f} chunks/s (embedding {embedding[0]:.1f} s, "
          f"{stats.chunks_embedded / embedding[0]:.1f} chunks/s; the rest {took - embedding[0]:.1f} s)")
    started = time.perf_counter()
    again = indexer.index_all()
    print(f"{label}, re-index with nothing changed: {time.perf_counter() - started:.3f} s "
          f"({again.unchanged} files unchanged, {again.chunks_embedded} embedded)")


def bench_index(folder: Path, source: Path | None, chunks: int, embedder: Embedder) -> None:
    """Index a copy of SOURCE, or a synthetic corpus of CHUNKS chunks when SOURCE is None."""
    root = folder / "knowledge"
    if source is not None:
        shutil.copytree(source, root)
    else:
        write_corpus(root, chunks)
    indexer = KnowledgeIndexer(Settings(data_dir=folder / "data", knowledge_dir=root),
                               embedder=embedder)
    timed_index(indexer, "shipped knowledge base" if source else f"synthetic {chunks:,}")
    indexer.close()


def fill_stores(indexer: KnowledgeIndexer, chunks: int, embedder: Embedder, seed: int = 5) -> None:
    """CHUNKS synthetic chunks straight into both stores, with near-real vectors."""
    rng, pool = random.Random(seed), sentences()
    noise = np.random.default_rng(seed)
    # Real embeddings of a few hundred paragraphs, plus noise: clustered like real text,
    # so the HNSW graph is searched as it would be, not over uniform random points.
    anchors = embedder.embed([paragraph(rng, pool) for _ in range(256)])
    store = indexer.settings.chroma_url or str(indexer.settings.data_dir / "chroma")
    pipeline = f"chunker-{CHUNKER_VERSION}|{model_id(indexer.precision)}|{store}"
    for first in range(0, chunks, 1000):
        count = min(1000, chunks - first)
        domain = DOMAINS[(first // 1000) % len(DOMAINS)]
        source = f"{domain}/bulk-{first:07d}.md"
        stored = []
        for n in range(count):
            body = paragraph(rng, pool)
            text = f"Bulk {first} — Part {n}\n\n{body}"
            stored.append(StoredChunk(f"{first:07d}-{n:04d}", source, domain, n, f"Bulk {first}",
                                      f"Part {n}", body, text))
        vectors = anchors[noise.integers(0, len(anchors), count)]
        vectors = vectors + noise.normal(0, 0.03, vectors.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        indexer._vectors.upsert(domain, [c.chunk_id for c in stored], vectors.astype(np.float32),
                                [c.body for c in stored],
                                [{"source": c.source, "domain": c.domain, "title": c.title,
                                  "heading": c.heading, "position": c.position} for c in stored])
        indexer.lexical.replace_file(FileRecord(source, domain, "-", 0, 0, count, pipeline), stored)


def bench_search(folder: Path, chunks: int, queries: int, embedder: Embedder) -> None:
    """Hybrid search latency over CHUNKS chunks, with and without a domain."""
    settings = Settings(data_dir=folder / "data", knowledge_dir=folder / "knowledge")
    if not (folder / "knowledge").is_dir():  # a --keep folder holds a corpus from an earlier run
        (folder / "knowledge").mkdir(parents=True)
        indexer = KnowledgeIndexer(settings, embedder=embedder)
        started = time.perf_counter()
        fill_stores(indexer, chunks, embedder)
        print(f"\nsearch corpus: {chunks:,} chunks written in {time.perf_counter() - started:.0f} s")
        indexer.close()
    questions = search_queries()
    print(f"\n{'hybrid search, k=5':<38} {'p50':>8} {'p99':>8} {'mean':>8}")
    for label, domains in (("domain given", list(DOMAINS)), ("domain=None", [None])):
        # A fresh indexer, as the hub opens it: its first pass meets every word for the first
        # time, so the lexical side counts each word's rows (cached until the index changes).
        indexer = KnowledgeIndexer(settings, embedder=embedder)
        started = time.perf_counter()
        indexer.search(questions[0], domains[0], 5)
        print(f"{label}: first search (opens SQLite and Chroma) "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        for name, count in (("first pass, words new", len(questions)), ("then", queries)):
            took = []
            for n in range(count):
                query, domain = questions[n % len(questions)], domains[n % len(domains)]
                started = time.perf_counter()
                hits = indexer.search(query, domain, 5)
                took.append((time.perf_counter() - started) * 1000)
                assert hits, query
            print(f"  {name + f' ({count} queries)':<36} {percentile(took, 50):6.1f}ms "
                  f"{percentile(took, 99):6.1f}ms {statistics.mean(took):6.1f}ms")
        indexer.close()


def search_queries(extra: int = 164, seed: int = 3) -> list[str]:
    """The evaluation questions, and spans of 4 to 9 words from the shipped documents."""
    rng, pool = random.Random(seed), sentences()
    found = [case["query"] for case in json.loads(CASES.read_text(encoding="utf-8"))["cases"]]
    for _ in range(extra):
        words, size = rng.choice(pool).split(), rng.randint(4, 9)
        first = rng.randint(0, max(0, len(words) - size))
        found.append(" ".join(words[first:first + size]))
    return found


def main() -> None:
    """Run the three parts and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="synthetic corpus to index (0: skip)")
    parser.add_argument("--search-chunks", type=int, default=100_000, help="corpus to search (0: skip)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--skip-shipped", action="store_true")
    parser.add_argument("--keep", type=Path, help="build the search corpus here once, and reuse it")
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = Embedder(precision=Settings().embedding_precision)
    print(f"embedder ({embedder.backend}) loaded in {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_shipped:
            (Path(tmp) / "shipped").mkdir()
            bench_index(Path(tmp) / "shipped", SHIPPED, 0, embedder)
        if args.chunks:
            (Path(tmp) / "synthetic").mkdir()
            bench_index(Path(tmp) / "synthetic", None, args.chunks, embedder)
        if args.search_chunks:
            folder = args.keep or Path(tmp) / "search"
            bench_search(folder, args.search_chunks, args.queries, embedder)


if __name__ == "__main__":
    main()
