"""The reasoning index: every distinct reasoning text, searchable by its words (SQLite FTS5,
in this instance's data folder) and by its meaning (the Chroma collection "reasoning", or
"reasoning-int8-w7" for the int8 encoder's current graph).

The knowledge base's pieces, reused: the same lexical index and query terms, the same
embedding model, the same fusion. Ids are the texts' database ids, as strings, on both sides.
Blocking by design: the hub calls it through asyncio.to_thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from core.settings import Settings
from storage.rag.embedding import INT8_GRAPH, Embedder, shared_embedder
from storage.rag.fusion import Ranking, hybrid
from storage.rag.lexical import LexicalIndex, StoredChunk
from storage.rag.minilm import F32
from storage.rag.vectors import VectorStore

COLLECTION = "reasoning"  # the lexical rows' source and domain, and float32's Chroma collection


class ReasoningIndex:
    """Distinct reasoning texts by id: added to the lexical side at once, embedded in batches."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self._path = settings.data_dir / "reasoning.db"
        self._embedder = embedder
        self.precision = embedder.precision if embedder else settings.embedding_precision
        # One collection per precision and int8 graph: a change of either re-embeds into its own
        # collection (from its own checkpoint) instead of mixing two kinds of vectors in one.
        self.collection = COLLECTION if self.precision == "float32" else f"{COLLECTION}-{INT8_GRAPH}"
        self._lexical: LexicalIndex | None = None
        self._vectors = VectorStore(settings.chroma_url, settings.data_dir / "chroma", prefix="")
        self._lock = threading.Lock()
        self.embedded = 0  # texts this instance embedded
        self._has_vectors = False

    @property
    def lexical(self) -> LexicalIndex:
        """The FTS5 file, opened on first use."""
        with self._lock:
            if self._lexical is None:
                self._lexical = LexicalIndex(self._path)
            return self._lexical

    @property
    def embedder(self) -> Embedder:
        """The embedding model (the process's shared one unless given)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = shared_embedder(self.precision)
            return self._embedder

    def close(self) -> None:
        """Close the FTS5 file and the Chroma client."""
        with self._lock:
            if self._lexical is not None:
                self._lexical.close()
                self._lexical = None
        self._vectors.close()

    def lexical_mark(self) -> int:
        """Every text up to this id is in the lexical index."""
        return self.lexical.last_position(COLLECTION)

    def add_lexical(self, texts: Sequence[tuple[int, str]]) -> None:
        """Make (id, text)s searchable by their words."""
        self.lexical.append([StoredChunk(str(i), COLLECTION, COLLECTION, i, "", "", "", text)
                             for i, text in texts])

    def embed(self, texts: Sequence[tuple[int, str]]) -> None:
        """Make (id, text)s searchable by meaning: one embedding each."""
        self.store(texts, self.vectors(texts))

    def vectors(self, texts: Sequence[tuple[int, str]]) -> F32:
        """The embeddings of (id, text)s, one row each (counted in `embedded`)."""
        vectors = self.embedder.embed([text for _, text in texts])
        self.embedded += len(texts)
        return vectors

    def store(self, texts: Sequence[tuple[int, str]], vectors: F32) -> None:
        """Put the (id, text)s' VECTORS into Chroma: searchable by meaning from then on."""
        # Only the vectors: the texts are in the database and the lexical index.
        self._vectors.upsert(self.collection, [str(i) for i, _ in texts], vectors)

    def search(self, query: str, n: int) -> Ranking:
        """Text ids best first, hybrid: the top N by meaning and by words, fused."""
        return hybrid(lambda: self._dense(query, None, n), lambda: self.lexical.search(query, None, n))

    def search_dense(self, query: str, n: int) -> Ranking:
        """By meaning only; score is cosine similarity."""
        return self._dense(query, None, n)

    def search_lexical(self, query: str, n: int) -> Ranking:
        """By words only (BM25); score is -bm25."""
        return self.lexical.search(query, None, n)

    def similar(self, text_id: int | None, text: str, n: int) -> Ranking:
        """Like search, for a stored text: its own vector is used when it has one."""
        return hybrid(lambda: self._dense(text, text_id, n), lambda: self.lexical.search(text, None, n))

    def _dense(self, text: str, text_id: int | None, n: int) -> Ranking:
        # Until a first vector is seen there is nothing to ask (the collection may not exist);
        # vectors are never removed, so once seen the count need not be asked again (5 ms).
        if not self._has_vectors:
            self._has_vectors = self._vectors.stored(self.collection) > 0
            if not self._has_vectors:
                return []
        vector = self._vectors.vector(self.collection, str(text_id)) if text_id is not None else None
        if vector is None:
            vector = self.embedder.embed_query(text)
        return self._vectors.query(self.collection, vector, n)
