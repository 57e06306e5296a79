"""KnowledgeIndexer: the knowledge folder indexed into Chroma and SQLite FTS5, searched hybrid.

    from storage.rag.indexer import KnowledgeIndexer
    stats = KnowledgeIndexer().index_all()   # beside a running daemon too: it does the work

Blocking by design (embedding, Chroma, SQLite): the hub calls it through asyncio.to_thread.
Indexing runs one at a time; searches may run beside them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from core.errors import BadRequest, NotFound
from core.knowledge import DOMAINS, DomainInfo, IndexStats, InlineDocument, SearchHit
from core.settings import Settings
from storage.rag.chunking import VERSION as CHUNKER_VERSION
from storage.rag.daemon_client import index_through_daemon, other_daemon
from storage.rag.embedding import Embedder, model_id, shared_embedder
from storage.rag.files import check_domains, safe_source, walk, write_document
from storage.rag.fusion import Ranking, hybrid
from storage.rag.lexical import LexicalIndex
from storage.rag.sync import Progress, Sync
from storage.rag.vectors import VectorStore


class KnowledgeIndexer:
    """Indexes knowledge/<domain>/*.md|.txt incrementally and answers hybrid searches."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None) -> None:
        self.settings = settings or Settings()
        self.root = self.settings.knowledge_dir
        self._embedder = embedder
        self.precision = embedder.precision if embedder else self.settings.embedding_precision
        self._lexical: LexicalIndex | None = None
        self._vectors = VectorStore(self.settings.chroma_url, self.settings.data_dir / "chroma")
        self._run_lock = threading.RLock()  # one indexing run at a time
        self._open_lock = threading.Lock()  # guards the lazy opening below
        self._warm = False

    @property
    def lexical(self) -> LexicalIndex:
        """The SQLite FTS5 index and manifest, opened on first use."""
        with self._open_lock:
            if self._lexical is None:
                self._lexical = LexicalIndex(self.settings.data_dir / "knowledge.db")
            return self._lexical

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (about a second)."""
        with self._open_lock:
            if self._embedder is None:
                self._embedder = shared_embedder(self.precision)
            return self._embedder

    @property
    def ready(self) -> bool:
        """Whether the model is loaded and the store open: a search now pays for neither."""
        return self._warm

    def warm_up(self) -> None:
        """Load the model and open the vector store now, so the first search is as fast as the
        tenth (about 1.3 s otherwise, paid by whoever asks first)."""
        self.embedder.embed_query("warm up")
        self._vectors.open()
        self._warm = True

    def close(self) -> None:
        """Close the SQLite database and the Chroma client."""
        with self._open_lock:
            if self._lexical is not None:
                self._lexical.close()
                self._lexical = None
        self._vectors.close()

    def index_all(self, domains: Sequence[str] | None = None,
                  progress: Progress | None = None) -> IndexStats:
        """Index every file of the given domains (default: all); stats[domain] = its chunks.

        Beside a running daemon (a script's indexer) the daemon does it: two processes must
        never write one embedded store."""
        chosen = check_domains(domains) if domains is not None else list(DOMAINS)
        if (daemon := other_daemon(self.settings)) is not None:
            return index_through_daemon(daemon, self.settings, domains)
        self._check_root()
        with self._run_lock:
            started, stats = time.perf_counter(), IndexStats()
            sync = self._sync(stats)
            if domains is None:
                self._report_strays(stats)
            for domain in chosen:
                sources, skipped = walk(self.root, domain)
                for path, reason in skipped:
                    stats.skip(path, reason)
                sync.files(domain, sources, _under(domain), progress)
            return self._finish(stats, started)

    def index_paths(self, paths: Sequence[str]) -> IndexStats:
        """Index files (or folders) given relative to the knowledge folder; a gone file is removed."""
        self._check_root()
        sources = list(dict.fromkeys(safe_source(self.root, p) for p in paths))
        with self._run_lock:
            started, stats = time.perf_counter(), IndexStats()
            sync = self._sync(stats)
            for source in sources:
                domain, target = source.split("/", 1)[0], self.root / source
                if target.is_dir():
                    found, skipped = walk(self.root, source)
                    for path, reason in skipped:
                        stats.skip(path, reason)
                    sync.files(domain, found, _under(source))
                elif target.exists() or source in sync.manifest:
                    sync.files(domain, [source] if target.exists() else [], _exactly(source))
                else:
                    stats.skip(source, "no such file, and nothing indexed under that path")
            return self._finish(stats, started)

    def add_documents(self, documents: Sequence[InlineDocument]) -> IndexStats:
        """Write each document to knowledge/<domain>/<slug>.md, then index those files."""
        with self._run_lock:
            return self.index_paths([write_document(self.root, d) for d in documents])

    def search(self, query: str, domain: str | None = None, k: int = 5) -> list[SearchHit]:
        """Hybrid search: dense and BM25 rankings of the top 4k each, fused by RRF."""
        domains, n = self._check(domain, k), max(4 * k, 20)
        if not query.strip():
            return []
        fused = hybrid(lambda: self._dense(query, domains, n), lambda: self.lexical.search(query, domain, n))
        return self._hits(fused, k)

    def search_dense(self, query: str, domain: str | None = None, k: int = 5) -> list[SearchHit]:
        """Embedding search only; score is cosine similarity."""
        domains = self._check(domain, k)
        return self._hits(self._dense(query, domains, k), k) if query.strip() else []

    def search_lexical(self, query: str, domain: str | None = None, k: int = 5) -> list[SearchHit]:
        """BM25 search only; score is -bm25 (higher is better)."""
        self._check(domain, k)
        return self._hits(self.lexical.search(query, domain, k), k)

    def overview(self) -> list[DomainInfo]:
        """Per domain: indexed files and chunks."""
        counts = self.lexical.chunk_counts()
        return [DomainInfo(domain=d, files=counts.get(d, (0, 0))[0], chunks=counts.get(d, (0, 0))[1])
                for d in DOMAINS]

    def _sync(self, stats: IndexStats) -> Sync:
        store = self.settings.chroma_url or str(self.settings.data_dir / "chroma")
        # Vectors made by another chunker, model, precision or store are not reused: those files
        # re-embed (float32's id is the bare model name, as before there was a choice).
        pipeline = f"chunker-{CHUNKER_VERSION}|{model_id(self.precision)}|{store}"
        # An embedded store deleted by hand leaves a manifest that describes nothing: rebuild.
        lost = not self.settings.chroma_url and not (self.settings.data_dir / "chroma").is_dir()
        return Sync(self.root, self.lexical, self._vectors, lambda: self.embedder, pipeline,
                    stats, trust_manifest=not lost)

    def _check_root(self) -> None:
        """A missing folder is a misconfiguration, not an empty knowledge base to sync down to."""
        if not self.root.is_dir():
            raise NotFound(f"the knowledge folder {self.root} does not exist (HUB_KNOWLEDGE_DIR)")

    def _report_strays(self, stats: IndexStats) -> None:
        """Folders at the top of knowledge/ that are not domains are reported, not indexed."""
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in DOMAINS:
                stats.skip(entry.name, f"not a knowledge domain; valid: {', '.join(DOMAINS)}")

    def _finish(self, stats: IndexStats, started: float) -> IndexStats:
        stats.chunks = {d.domain: d.chunks for d in self.overview()}
        stats.seconds = round(time.perf_counter() - started, 3)
        return stats

    def _check(self, domain: str | None, k: int) -> list[str]:
        """The domains a search covers; refuses an unknown domain or k < 1."""
        if k < 1:
            raise BadRequest(f"k must be at least 1, not {k}")
        return check_domains([domain]) if domain is not None else list(DOMAINS)

    def _dense(self, query: str, domains: list[str], n: int) -> Ranking:
        """Nearest chunks over the domains' collections, merged by similarity."""
        counts = self.lexical.chunk_counts()
        searched = [d for d in domains if counts.get(d, (0, 0))[1] > 0]  # empty: nothing to ask
        if not searched:
            return []
        vector = self.embedder.embed_query(query)
        found = [hit for d in searched for hit in self._vectors.query(d, vector, n)]
        return sorted(found, key=lambda hit: -hit[1])[:n]

    def _hits(self, ranking: Ranking, k: int) -> list[SearchHit]:
        """The ranking's top K as hits, with text from the lexical store."""
        rows = self.lexical.chunks(i for i, _ in ranking[:k])
        if len(rows) < min(k, len(ranking)):  # a vector whose chunk is gone: read further down
            rows = self.lexical.chunks(i for i, _ in ranking)
        hits = [SearchHit(chunk_id=i, source=r.source, domain=r.domain, title=r.title,
                          heading=r.heading, text=r.body, score=score)
                for i, score in ranking if (r := rows.get(i)) is not None]
        return hits[:k]


def _under(folder: str) -> Callable[[str], bool]:
    """Whether a source lies in FOLDER."""
    return lambda source: source.startswith(folder + "/")


def _exactly(path: str) -> Callable[[str], bool]:
    """Whether a source is PATH."""
    return lambda source: source == path
