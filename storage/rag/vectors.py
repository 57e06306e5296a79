"""The dense side of knowledge search: one Chroma collection per domain, vectors passed in.

Collections are made with embedding_function=None: Chroma's default function would download
a model, and our vectors come from storage.rag.embedding anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # importing chromadb takes a second; only the first use pays for it
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

BATCH = 1000  # under every Chroma server's max batch size
Metadata = Mapping[str, str | int]


def collection_name(domain: str, prefix: str = "knowledge_") -> str:
    """The Chroma collection of a domain."""
    return f"{prefix}{domain}"


# chromadb shares one system per embedded path between clients, but making or releasing
# two at once (the knowledge base's and the reasoning index's, from two threads) races.
_clients_lock = threading.Lock()


def open_client(url: str | None, path: Path) -> ClientAPI:
    """HttpClient for a Chroma server URL, else an embedded PersistentClient at PATH."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if not url:
        path.mkdir(parents=True, exist_ok=True)
        with _clients_lock:
            return chromadb.PersistentClient(path=str(path), settings=settings)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    https = parts.scheme == "https"
    return chromadb.HttpClient(host=parts.hostname or "localhost",
                               port=parts.port or (443 if https else 8000),
                               ssl=https, settings=settings)


class VectorStore:
    """Per-domain Chroma collections in cosine space (named PREFIX + domain); opened on first use."""

    def __init__(self, url: str | None, path: Path, prefix: str = "knowledge_") -> None:
        self._url, self._path, self._prefix = url, path, prefix
        self._client: ClientAPI | None = None
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def open(self) -> ClientAPI:
        """The client, connected on first use (importing chromadb takes a second)."""
        with self._lock:
            if self._client is None:
                self._client = open_client(self._url, self._path)
            return self._client

    def close(self) -> None:
        """Release the client: an embedded store's system (its files, threads and caches) stays
        in chromadb's process-wide registry until then."""
        with self._lock:
            if self._client is not None:
                with _clients_lock:
                    self._client.close()  # type: ignore[attr-defined]  # Client has it; ClientAPI omits it
            self._client, self._collections = None, {}

    def collection(self, domain: str) -> Collection:
        """The domain's collection, created when missing."""
        client = self.open()
        with self._lock:
            if domain not in self._collections:
                self._collections[domain] = client.get_or_create_collection(
                    collection_name(domain, self._prefix), embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}})
            return self._collections[domain]

    def upsert(self, domain: str, ids: Sequence[str], vectors: NDArray[np.float32],
               documents: Sequence[str] | None = None, metadatas: Sequence[Metadata] | None = None) -> None:
        """Insert or replace vectors, in batches; documents and metadata are optional (without
        them Chroma's insert costs about a third less)."""
        target = self.collection(domain)
        for i in range(0, len(ids), BATCH):
            end = i + BATCH
            target.upsert(ids=list(ids[i:end]), embeddings=vectors[i:end],
                          documents=None if documents is None else list(documents[i:end]),
                          metadatas=None if metadatas is None else _metas(metadatas[i:end]))

    def delete(self, domain: str, ids: Sequence[str]) -> None:
        """Remove vectors by id (unknown ids are ignored)."""
        if not ids:
            return
        target = self.collection(domain)
        for i in range(0, len(ids), BATCH):
            target.delete(ids=list(ids[i:i + BATCH]))

    def query(self, domain: str, vector: NDArray[np.float32], n: int) -> list[tuple[str, float]]:
        """(id, cosine similarity) of the N nearest vectors, best first."""
        found = self.collection(domain).query(
            query_embeddings=vector.reshape(1, -1), n_results=n, include=["distances"])
        ids, distances = found["ids"][0], (found["distances"] or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def vector(self, domain: str, item: str) -> NDArray[np.float32] | None:
        """The stored vector of ITEM, if there is one."""
        found = self.collection(domain).get(ids=[item], include=["embeddings"])
        embeddings = found["embeddings"]
        return None if embeddings is None or len(embeddings) == 0 else np.asarray(embeddings[0], np.float32)

    def stored(self, domain: str) -> int:
        """Vectors in the domain's collection; 0 when it does not exist (it is not created)."""
        if domain in self._collections:
            return self.count(domain)
        from chromadb.errors import NotFoundError

        try:
            found = self.open().get_collection(collection_name(domain, self._prefix), embedding_function=None)
        except (NotFoundError, ValueError):  # ValueError: older chromadb
            return 0
        with self._lock:
            self._collections.setdefault(domain, found)
        return int(found.count())

    def count(self, domain: str) -> int:
        """Number of vectors in the domain's collection."""
        return int(self.collection(domain).count())


def _metas(metadatas: Sequence[Metadata]) -> list[Any]:
    # Chroma's metadata type is a union of dicts mypy cannot match a Mapping against.
    return [dict(m) for m in metadatas]
