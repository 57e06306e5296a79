"""Incremental indexing: bring the stores in line with the files, embedding only new chunks.

A file whose size and mtime match the manifest is not read; one whose content hash matches
is not chunked; of a changed file only the chunks with new ids are embedded. Chroma is
written before SQLite, so a crash in between leaves the manifest behind and the next run
redoes the file (upserts by stable id make that harmless).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.knowledge import IndexStats
from storage.rag.chunking import chunk_document, chunk_id
from storage.rag.embedding import Embedder
from storage.rag.files import Loaded, Unreadable, read_file
from storage.rag.lexical import FileRecord, LexicalIndex, StoredChunk
from storage.rag.vectors import VectorStore

BATCH_CHUNKS = 256  # chunks embedded per flush: big batches for speed, bounded memory
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class _Pending:
    """A changed file, chunked, waiting for its new chunks to be embedded."""

    record: FileRecord
    chunks: list[StoredChunk]
    reuse: frozenset[str]  # ids whose vectors are already in the store
    stale: frozenset[str]  # ids to delete once the new ones are in
    is_new: bool


class Sync:
    """One indexing run over both stores; counts go into STATS."""

    def __init__(self, root: Path, lexical: LexicalIndex, vectors: VectorStore,
                 embedder: Callable[[], Embedder], pipeline: str, stats: IndexStats,
                 *, trust_manifest: bool = True) -> None:
        self.root, self.lexical, self.vectors = root, lexical, vectors
        self.embedder, self.pipeline, self.stats = embedder, pipeline, stats
        self.trust_manifest = trust_manifest
        self.manifest = lexical.files()
        self._pending: list[_Pending] = []

    def files(self, domain: str, sources: list[str], in_scope: Callable[[str], bool],
              progress: Progress | None = None) -> None:
        """Index SOURCES and forget the indexed files in scope that are not among them."""
        on_disk = set(sources)
        for source in [s for s in self.manifest if in_scope(s) and s not in on_disk]:
            self.remove(source)
            self.stats.deleted += 1
        for done, source in enumerate(sources, 1):
            self._prepare(source)
            if sum(len(p.chunks) for p in self._pending) >= BATCH_CHUNKS:
                self.flush()
            if progress and not self._pending and done < len(sources):
                progress(domain, done, len(sources))
        self.flush()
        if progress:
            progress(domain, len(sources), len(sources))

    def remove(self, source: str) -> None:
        """Delete a file's chunks from Chroma and SQLite."""
        record = self.manifest.pop(source, None)
        if record is not None:
            self.vectors.delete(record.domain, self.lexical.chunk_ids(source))
            self.lexical.delete_file(source)

    def flush(self) -> None:
        """Embed the queued files' new chunks, then write both stores."""
        batch, self._pending = self._pending, []
        todo = [c for p in batch for c in p.chunks if c.chunk_id not in p.reuse]
        if todo:
            vectors = self.embedder().embed([c.text for c in todo])
            rows: dict[str, list[int]] = defaultdict(list)
            for row, chunk in enumerate(todo):
                rows[chunk.domain].append(row)
            for domain, index in rows.items():
                chunks = [todo[i] for i in index]
                self.vectors.upsert(domain, [c.chunk_id for c in chunks], vectors[index],
                                    [c.body for c in chunks], [_metadata(c) for c in chunks])
        for pending in batch:
            self.vectors.delete(pending.record.domain, sorted(pending.stale))
            self.lexical.replace_file(pending.record, pending.chunks)
            self.manifest[pending.record.source] = pending.record
            if pending.is_new:
                self.stats.added += 1
            else:
                self.stats.updated += 1
        self.stats.chunks_embedded += len(todo)

    def _prepare(self, source: str) -> None:
        """Pass over an unchanged file, or queue a changed one for embedding."""
        path, record = self.root / source, self.manifest.get(source)
        trusted = self.trust_manifest and record is not None and record.pipeline == self.pipeline
        current = record if trusted else None
        try:
            stat = path.stat()
            if current and (current.size, current.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                self.stats.unchanged += 1
                return
            loaded = read_file(path)
        except (Unreadable, OSError) as error:
            note = " (its earlier chunks were removed)" if record else ""
            self.stats.skip(source, f"{error}{note}")
            self.remove(source)
            return
        if current and current.sha256 == loaded.sha256:
            self.lexical.touch_file(source, loaded.size, loaded.mtime_ns)
            self.stats.unchanged += 1
            return
        old = frozenset(self.lexical.chunk_ids(source)) if record else frozenset()
        chunks = _stored(source, loaded)
        new_record = FileRecord(source, source.split("/", 1)[0], loaded.sha256, loaded.size,
                                loaded.mtime_ns, len(chunks), self.pipeline)
        # Vectors made by another pipeline (chunker, model or store) cannot be reused.
        self._pending.append(_Pending(new_record, chunks, old if current else frozenset(),
                                      old - {c.chunk_id for c in chunks}, record is None))


def _stored(source: str, loaded: Loaded) -> list[StoredChunk]:
    """The file's chunks, ready for both stores."""
    domain = source.split("/", 1)[0]
    return [StoredChunk(chunk_id(source, c), source, domain, c.position, c.title, c.heading,
                        c.body, c.text) for c in chunk_document(loaded.text, source)]


def _metadata(chunk: StoredChunk) -> dict[str, str | int]:
    return {"source": chunk.source, "domain": chunk.domain, "title": chunk.title,
            "heading": chunk.heading, "position": chunk.position}
