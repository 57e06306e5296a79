"""The lexical side of knowledge search: SQLite FTS5 (BM25) over chunks, plus the file manifest.

One SQLite file holds three things that must change together: the chunks, their FTS5 index
(kept in step by triggers) and the manifest of indexed files (content hash, size, mtime), so
a file's chunks and its manifest row are replaced in one transaction.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_TERMS = 64
# Rows a search may score. An OR query costs the sum of its terms' row counts: over 100k chunks
# "price" alone is in 60k, and scoring every match took 60-100 ms. The rarest terms are kept;
# the commonest are dropped once over budget. They have the lowest idf, so they move the BM25
# ranking least (a small knowledge base, like the shipped one, stays under it: nothing dropped).
POSTINGS_BUDGET = 10_000
# Question words carry no topic; in an OR query they only add noise to the ranking.
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it its me my of on or "
    "should so that the their there these this to was what when where which who why will "
    "with would you your".split()
)
_TERM = re.compile(r"\w+", re.UNICODE)

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

# Per connection, in memory: a scratch FTS5 table that stems query words like chunk_fts does,
# and a view of chunk_fts's vocabulary (rows per term and column).
_TEMP_SCHEMA = """
PRAGMA temp_store=MEMORY;
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5(
    text, tokenize='porter unicode61 remove_diacritics 2', detail=none);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_stems USING fts5vocab(temp, query_terms, instance);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, chunk_fts, col);
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


def query_terms(text: str) -> list[str]:
    """The words of user text worth searching for, each once, in order."""
    terms = [t for t in _TERM.findall(text.lower()) if t not in STOPWORDS]
    if not terms:  # a query made only of stopwords is still a query
        terms = _TERM.findall(text.lower())
    return list(dict.fromkeys(terms))[:MAX_TERMS]


def fts_query(text: str | list[str]) -> str:
    """User text (or its terms) as a safe FTS5 query: each word quoted, OR-ed; '' when empty."""
    terms = query_terms(text) if isinstance(text, str) else text
    return " OR ".join(f'"{term}"' for term in terms)


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
            self._db.executescript(_TEMP_SCHEMA)
        self._rows: dict[str, int] = {}  # query term -> rows holding it, while the index is as now
        self._version = -1  # PRAGMA data_version when _rows was filled

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
            match = fts_query(self._affordable(terms))
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

    def _affordable(self, terms: list[str]) -> list[str]:
        """Rarest TERMS first, up to POSTINGS_BUDGET rows (one at least); terms in no row left out."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        # Another connection wrote (the counts may be stale), or the cache grew too big.
        if version != self._version or len(self._rows) > 100_000:
            self._rows, self._version = {}, version
        if missing := [t for t in terms if t not in self._rows]:
            self._rows.update(self._count_rows(missing))
        kept: list[str] = []
        total = 0
        for term in sorted((t for t in terms if self._rows[t] > 0), key=self._rows.__getitem__):
            if kept and total + self._rows[term] > POSTINGS_BUDGET:
                break
            kept.append(term)
            total += self._rows[term]
        return kept

    def _count_rows(self, terms: list[str]) -> dict[str, int]:
        """Rows of chunk_fts whose text holds each term."""
        # The index holds porter stems: stem the terms with the same tokenizer to look them up.
        self._db.execute("DELETE FROM temp.query_terms")
        self._db.executemany("INSERT INTO temp.query_terms (rowid, text) VALUES (?, ?)",
                             enumerate(terms))
        stems: dict[int, list[str]] = {}
        for stem, row in self._db.execute("SELECT term, doc FROM temp.query_stems"):
            stems.setdefault(row, []).append(stem)
        # FTS5 counts a term's rows by walking its whole posting list (1.3 ms for "price" in
        # 60k rows), hence the cache of counts, emptied whenever the index changes.
        found = {stem: self._db.execute(
            "SELECT coalesce(sum(doc), 0) FROM temp.vocab WHERE term = ? AND col = 'text'",
            (stem,)).fetchone()[0] for stem in {s for group in stems.values() for s in group}}
        # A term of several tokens ("stop_loss") is a phrase: in no more rows than its rarest.
        return {term: min((found[s] for s in stems.get(row, [])), default=0)
                for row, term in enumerate(terms)}

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
            self._rows.clear()  # this connection's own writes leave data_version as it is
            self._db.execute("DELETE FROM chunk WHERE source = ?", (record.source,))
            self._db.executemany(
                "INSERT INTO chunk (chunk_id, source, domain, position, title, heading, body, text)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.chunk_id, c.source, c.domain, c.position, c.title, c.heading, c.body, c.text)
                 for c in chunks])
            self._db.execute(
                "INSERT OR REPLACE INTO file VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.source, record.domain, record.sha256, record.size, record.mtime_ns,
                 record.chunks, record.pipeline))

    def touch_file(self, source: str, size: int, mtime_ns: int) -> None:
        """Record a new size and mtime for a file whose content did not change."""
        with self._lock:
            self._db.execute("UPDATE file SET size = ?, mtime_ns = ? WHERE source = ?",
                             (size, mtime_ns, source))

    def delete_file(self, source: str) -> None:
        """Forget a file and its chunks."""
        with self._lock, _transaction(self._db):
            self._rows.clear()
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
