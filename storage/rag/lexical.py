"""The lexical side of knowledge search: SQLite FTS5 (BM25) over chunks, plus the file manifest.

One SQLite file holds three things that must change together: the chunks, their FTS5 index
(kept in step by triggers) and the manifest of indexed files (content hash, size, mtime), so
a file's chunks and its manifest row are replaced in one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from storage.rag.query_terms import TermRows, fts_query, query_terms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk (
    id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    domain TEXT NOT NULL, position INTEGER NOT NULL, title TEXT NOT NULL,
    heading TEXT NOT NULL, body TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunk_source ON chunk (source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5(
    text, domain, content='chunk', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS chunk_ai AFTER INSERT ON chunk BEGIN
    INSERT INTO chunk_fts (rowid, text, domain) VALUES (new.id, new.text, new.domain); END;
CREATE TRIGGER IF NOT EXISTS chunk_ad AFTER DELETE ON chunk BEGIN
    INSERT INTO chunk_fts (chunk_fts, rowid, text, domain)
    VALUES ('delete', old.id, old.text, old.domain); END;
CREATE TABLE IF NOT EXISTS file (
    source TEXT PRIMARY KEY, domain TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, chunks INTEGER NOT NULL, pipeline TEXT NOT NULL);
"""

@dataclass(frozen=True)
class StoredChunk:
    """A chunk as the lexical index holds it."""

    chunk_id: str
    source: str
    domain: str
    position: int
    title: str
    heading: str
    body: str
    text: str


@dataclass(frozen=True)
class FileRecord:
    """The manifest row of one indexed file."""

    source: str
    domain: str
    sha256: str
    size: int
    mtime_ns: int
    chunks: int
    pipeline: str  # chunker and model version the chunks were made with


class LexicalIndex:
    """Chunks with BM25 search and the manifest, in one SQLite file; safe to share by threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with _transaction(self._db):
                _migrate(self._db)
            self._terms = TermRows(self._db)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def search(self, query: str, domain: str | None, k: int) -> list[tuple[str, float]]:
        """(chunk_id, score) best first; score is -bm25, so higher is better."""
        terms = query_terms(query)
        if not terms or k < 1:
            return []
        with self._lock:
            match = fts_query(self._terms.affordable(terms))
            if not match:
                return []
            # The domain is a column of the index, so FTS5 scores only that domain's rows
            # (filtering on chunk.domain scored them all); domain names are distinct words.
            match = f"text : ({match})"
            if domain is not None:
                match = f'domain : "{domain.replace(chr(34), chr(34) * 2)}" AND {match}'
            # Ranked inside FTS5 (the domain column weighs nothing), then only the top K
            # rows of chunk are read.
            rows = self._db.execute(
                "SELECT c.chunk_id, f.rank FROM (SELECT rowid, bm25(chunk_fts, 1.0, 0.0) AS rank "
                "FROM chunk_fts WHERE chunk_fts MATCH ? ORDER BY rank LIMIT ?) AS f "
                "JOIN chunk c ON c.id = f.rowid ORDER BY f.rank", (match, k)).fetchall()
        return [(chunk_id, -rank) for chunk_id, rank in rows]

    def chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]:
        """The stored chunks with these ids (missing ids are left out)."""
        ids = list(chunk_ids)
        found: dict[str, StoredChunk] = {}
        for start in range(0, len(ids), 500):  # under SQLite's limit on bound parameters
            batch = ids[start:start + 500]
            marks = ",".join("?" * len(batch))
            with self._lock:
                rows = self._db.execute(
                    "SELECT chunk_id, source, domain, position, title, heading, body, text "
                    f"FROM chunk WHERE chunk_id IN ({marks})", batch).fetchall()
            found.update((row[0], StoredChunk(*row)) for row in rows)
        return found

    def chunk_ids(self, source: str) -> list[str]:
        """Ids of a file's chunks, in position order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT chunk_id FROM chunk WHERE source = ? ORDER BY position", (source,))
            return [row[0] for row in rows]

    def files(self) -> dict[str, FileRecord]:
        """The whole manifest, by source."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, domain, sha256, size, mtime_ns, chunks, pipeline FROM file").fetchall()
        return {row[0]: FileRecord(*row) for row in rows}

    def chunk_counts(self) -> dict[str, tuple[int, int]]:
        """Domain -> (files, chunks), from the manifest."""
        with self._lock:
            rows = self._db.execute(
                "SELECT domain, count(*), coalesce(sum(chunks), 0) FROM file GROUP BY domain")
            return {domain: (files, chunks) for domain, files, chunks in rows}

    def replace_file(self, record: FileRecord, chunks: Sequence[StoredChunk]) -> None:
        """Make RECORD and CHUNKS the file's entry, in one transaction."""
        with self._lock, _transaction(self._db):
            self._terms.forget()
            self._db.execute("DELETE FROM chunk WHERE source = ?", (record.source,))
            self._insert_chunks("INSERT", chunks)
            self._db.execute(
                "INSERT OR REPLACE INTO file VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.source, record.domain, record.sha256, record.size, record.mtime_ns,
                 record.chunks, record.pipeline))

    def append(self, chunks: Sequence[StoredChunk]) -> None:
        """Add chunks that belong to no file (the reasoning index's texts); known ids are kept."""
        with self._lock, _transaction(self._db):
            self._terms.forget()
            self._insert_chunks("INSERT OR IGNORE", chunks)

    def _insert_chunks(self, verb: str, chunks: Sequence[StoredChunk]) -> None:
        """CHUNKS into the table (the caller holds the lock, in a transaction)."""
        self._db.executemany(
            f"{verb} INTO chunk (chunk_id, source, domain, position, title, heading, body, text)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.chunk_id, c.source, c.domain, c.position, c.title, c.heading, c.body, c.text)
             for c in chunks])

    def last_position(self, source: str) -> int:
        """The highest position of SOURCE's chunks; 0 when it has none."""
        with self._lock:
            row = self._db.execute("SELECT max(position) FROM chunk WHERE source = ?", (source,)).fetchone()
        return int(row[0] or 0)

    def touch_file(self, source: str, size: int, mtime_ns: int) -> None:
        """Record a new size and mtime for a file whose content did not change."""
        with self._lock:
            self._db.execute("UPDATE file SET size = ?, mtime_ns = ? WHERE source = ?",
                             (size, mtime_ns, source))

    def delete_file(self, source: str) -> None:
        """Forget a file and its chunks."""
        with self._lock, _transaction(self._db):
            self._terms.forget()
            self._db.execute("DELETE FROM chunk WHERE source = ?", (source,))
            self._db.execute("DELETE FROM file WHERE source = ?", (source,))


def _migrate(db: sqlite3.Connection) -> None:
    """Create the schema; an index from before the domain column is rebuilt (a second per 100k)."""
    found = db.execute("SELECT sql FROM sqlite_master WHERE name = 'chunk_fts'").fetchone()
    old = found is not None and "domain" not in found[0]
    if old:
        db.execute("DROP TRIGGER IF EXISTS chunk_ai")
        db.execute("DROP TRIGGER IF EXISTS chunk_ad")
        db.execute("DROP TABLE chunk_fts")
    for statement in _SCHEMA.split(";\n"):  # executescript() would commit the transaction
        if statement.strip():
            db.execute(statement)
    if old:
        db.execute("INSERT INTO chunk_fts (chunk_fts) VALUES ('rebuild')")


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN … COMMIT, or ROLLBACK on an exception (the connection is in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
