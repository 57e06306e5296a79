"""Query terms for the lexical index: the words of a query, and which of them are worth scoring."""

from __future__ import annotations

import re
import sqlite3

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

# Per connection, in memory: a scratch FTS5 table that stems query words like chunk_fts does,
# and a view of chunk_fts's vocabulary (rows per term and column).
_TEMP_SCHEMA = """
PRAGMA temp_store=MEMORY;
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5(
    text, tokenize='porter unicode61 remove_diacritics 2', detail=none);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_stems USING fts5vocab(temp, query_terms, instance);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, chunk_fts, col);
"""


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


class TermRows:
    """Rows of the index holding each query term, cached while the index is unchanged.

    Not thread-safe: its owner calls it under the lock that guards DB, and calls forget()
    after writing through DB.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        db.executescript(_TEMP_SCHEMA)
        self._db = db
        self._rows: dict[str, int] = {}  # query term -> rows holding it, while the index is as now
        self._version = -1  # PRAGMA data_version when _rows was filled

    def forget(self) -> None:
        """Drop the cached counts (this connection's own writes leave data_version as it is)."""
        self._rows.clear()

    def affordable(self, terms: list[str]) -> list[str]:
        """Rarest TERMS first, up to POSTINGS_BUDGET rows (one at least); terms in no row left out."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        # Another connection wrote (the counts may be stale), or the cache grew too big.
        if version != self._version or len(self._rows) > 100_000:
            self._rows, self._version = {}, version
        if missing := [t for t in terms if t not in self._rows]:
            self._rows.update(self._count(missing))
        kept: list[str] = []
        total = 0
        for term in sorted((t for t in terms if self._rows[t] > 0), key=self._rows.__getitem__):
            if kept and total + self._rows[term] > POSTINGS_BUDGET:
                break
            kept.append(term)
            total += self._rows[term]
        return kept

    def _count(self, terms: list[str]) -> dict[str, int]:
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
