"""The knowledge base: chunking, incremental indexing, safety, and search against a real Chroma."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from core.errors import BadRequest, NotFound, UnknownDomain, UnsafePath
from core.knowledge import DOMAINS, InlineDocument, SearchRequest
from core.settings import REPO_ROOT, Settings
from storage.rag.chunking import chunk_document, chunk_id, split_by_size
from storage.rag.embedding import Embedder
from storage.rag.fusion import fuse
from storage.rag.indexer import KnowledgeIndexer
from storage.rag.query_terms import fts_query

NESTED = """Preamble before any heading.

# Risk Notes

Intro under the title.

## Sizing

Size small.

### Kelly

Bet the edge over the odds.

```python
# not a heading, a comment
x = 1
```

## Stops

Use them.
"""


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """One embedder for the module, of the configured precision (an indexer built without one
    must take these vectors as its own); loading takes about a second."""
    return Embedder(precision=Settings().embedding_precision)


@pytest.fixture(autouse=True)
def no_default_embedding_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chroma's default embedding function downloads a model: make any use of it fail loudly."""
    from chromadb.api.types import DefaultEmbeddingFunction
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("Chroma's default embedding function was used")

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__init__", refuse)
    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", refuse)


def write(root: Path, source: str, text: str) -> Path:
    """Write a file under ROOT, making folders."""
    path = root / source
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_indexer(tmp_path: Path, embedder: Embedder | None) -> KnowledgeIndexer:
    """An indexer whose knowledge folder and stores live in TMP_PATH."""
    settings = Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "knowledge")
    (tmp_path / "knowledge").mkdir(exist_ok=True)
    return KnowledgeIndexer(settings, embedder=embedder)


@pytest.fixture
def kb(tmp_path: Path, embedder: Embedder) -> Iterator[KnowledgeIndexer]:
    """An indexer over a small knowledge folder: two technical docs and one risk doc."""
    root = tmp_path / "knowledge"
    write(root, "technical/rsi.md", "# RSI\n\n## Levels\n\nBelow 30 is oversold.\n")
    write(root, "technical/macd.md", "# MACD\n\n## Histogram\n\nThe histogram shrinks first.\n")
    write(root, "risk/kelly.md", "# Kelly\n\n## Formula\n\nf* = p - q/b sizes the zanzibar bet.\n")
    write(root, "README.md", "# Not a domain document\n")
    indexer = make_indexer(tmp_path, embedder)
    yield indexer
    indexer.close()


# --- chunking ---------------------------------------------------------------------------------

def test_heading_paths_and_title() -> None:
    chunks = chunk_document(NESTED, "risk/notes.md")
    assert {c.title for c in chunks} == {"Risk Notes"}
    paths = [c.headings for c in chunks]
    assert paths == [(), (), ("Sizing",), ("Sizing", "Kelly"), ("Stops",)]
    kelly = next(c for c in chunks if c.headings == ("Sizing", "Kelly"))
    assert "# not a heading, a comment" in kelly.body  # '#' inside a code fence is code
    assert kelly.heading == "Sizing > Kelly"
    assert kelly.text.startswith("Risk Notes — Sizing > Kelly\n\n")
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[0].text.startswith("Risk Notes\n\nPreamble")  # no heading path: title alone


def test_second_h1_is_part_of_the_path() -> None:
    chunks = chunk_document("# Doc\n\n## A\n\ntext a\n\n# Other\n\n### Deep\n\ntext d\n", "x.md")
    assert [c.headings for c in chunks] == [("A",), ("Other", "Deep")]


def test_title_falls_back_to_the_file_stem() -> None:
    chunks = chunk_document("## Only a section\n\nBody.\n", "technical/ichimoku-cloud.md")
    assert chunks[0].title == "ichimoku-cloud"
    assert chunks[0].headings == ("Only a section",)


def test_long_sections_split_with_overlap() -> None:
    sentences = [f"Sentence number {i} says something about trend following." for i in range(60)]
    body = " ".join(sentences[:30]) + "\n\n" + " ".join(sentences[30:])
    pieces = split_by_size(body, target=800, overlap=120)
    assert len(pieces) >= 3
    assert all(len(p) <= 1100 for p in pieces)
    for before, after in zip(pieces, pieces[1:]):
        head = after[:60]
        assert head in before, "each piece starts with the end of the one before"
        assert after[0].isupper(), "overlap starts at a sentence boundary"
    assert "Sentence number 59" in pieces[-1]


def test_short_text_is_one_piece_and_blank_is_none() -> None:
    assert split_by_size("Just one paragraph.") == ["Just one paragraph."]
    assert split_by_size("  \n\n ") == []


def test_txt_files_split_by_size_only() -> None:
    text = "# not a heading in a .txt\n\n" + "Plain words here. " * 100
    chunks = chunk_document(text, "papers/notes.txt")
    assert len(chunks) > 1
    assert {c.title for c in chunks} == {"notes"}
    assert all(c.headings == () for c in chunks)
    assert chunks[0].body.startswith("# not a heading")


def test_chunk_ids_are_stable_and_content_addressed() -> None:
    a = chunk_document(NESTED, "risk/notes.md")
    b = chunk_document(NESTED, "risk/notes.md")
    assert [chunk_id("risk/notes.md", c) for c in a] == [chunk_id("risk/notes.md", c) for c in b]
    assert chunk_id("risk/notes.md", a[0]) != chunk_id("risk/other.md", a[0])


def test_fts_query_never_has_syntax() -> None:
    for text in ['"', "*", "NEAR(", "-", ":", 'a "b* NEAR(c, 2) -d col:e AND OR NOT ^']:
        query = fts_query(text)
        assert all(part.startswith('"') and part.endswith('"') for part in query.split(" OR ") if part)


def test_fuse_rewards_agreement() -> None:
    fused = fuse([[("a", 0.9), ("b", 0.8)], [("b", 3.0), ("c", 2.0)]])
    assert [item for item, _ in fused] == ["b", "a", "c"]


# --- incremental indexing ----------------------------------------------------------------------

def test_index_add_unchanged_change_delete(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    root = tmp_path / "knowledge"
    first = kb.index_all()
    assert (first.added, first.updated, first.unchanged, first.deleted) == (3, 0, 0, 0)
    assert first["technical"] == 2 and first["risk"] == 1 and first["papers"] == 0
    assert first.chunks_embedded == 3 and not first.skipped
    ids = {s: kb.lexical.chunk_ids(s) for s in ("technical/rsi.md", "technical/macd.md", "risk/kelly.md")}

    again = kb.index_all()
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 3, 0)
    assert again.chunks_embedded == 0

    os.utime(root / "technical/rsi.md", ns=(1, 1))  # touched, same content: still unchanged
    write(root, "technical/macd.md", "# MACD\n\n## Histogram\n\nThe histogram turns before price.\n")
    (root / "risk/kelly.md").unlink()
    third = kb.index_all()
    assert (third.added, third.updated, third.unchanged, third.deleted) == (0, 1, 1, 1)
    assert third.chunks_embedded == 1
    assert third["risk"] == 0 and third["technical"] == 2
    assert kb.lexical.chunk_ids("technical/rsi.md") == ids["technical/rsi.md"]
    assert kb.lexical.chunk_ids("technical/macd.md") != ids["technical/macd.md"]

    gone = ids["risk/kelly.md"] + ids["technical/macd.md"]
    assert kb.lexical.chunks(gone) == {}
    assert kb._vectors.collection("risk").get(ids=ids["risk/kelly.md"])["ids"] == []
    assert kb._vectors.collection("technical").get(ids=ids["technical/macd.md"])["ids"] == []
    assert kb._vectors.count("technical") == 2 and kb._vectors.count("risk") == 0
    assert kb.search_lexical("zanzibar") == []
    assert all(hit.source != "risk/kelly.md" for hit in kb.search("Kelly bet sizing formula"))


def test_ids_are_stable_across_fresh_stores(tmp_path: Path, embedder: Embedder) -> None:
    ids = []
    for name in ("one", "two"):
        write(tmp_path / name / "knowledge", "technical/rsi.md", "# RSI\n\n## Levels\n\n30 and 70.\n")
        indexer = make_indexer(tmp_path / name, embedder)
        indexer.index_all()
        ids.append(indexer.lexical.chunk_ids("technical/rsi.md"))
        indexer.close()
    assert ids[0] == ids[1] and len(ids[0]) == 1


def test_nothing_changed_loads_no_model_and_opens_no_chroma(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    kb.index_all()
    fresh = make_indexer(tmp_path, None)
    stats = fresh.index_all()
    assert stats.unchanged == 3 and stats.chunks_embedded == 0
    assert fresh._embedder is None and fresh._vectors._client is None
    fresh.close()


def test_a_deleted_chroma_store_is_rebuilt(kb: KnowledgeIndexer, tmp_path: Path, embedder: Embedder) -> None:
    kb.index_all()
    kb.close()  # releases the store's system, which chromadb would otherwise keep for the process
    shutil.rmtree(tmp_path / "data" / "chroma")
    fresh = make_indexer(tmp_path, embedder)
    stats = fresh.index_all()
    assert stats.updated == 3 and stats.chunks_embedded == 3
    fresh.close()


def test_index_paths_and_progress(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    kb.index_all(["technical"], progress=lambda *call: calls.append(call))
    assert calls[-1] == ("technical", 2, 2)
    assert kb.overview()[DOMAINS.index("risk")].files == 0

    stats = kb.index_paths(["risk/kelly.md", "risk/kelly.md"])
    assert stats.added == 1 and stats["risk"] == 1
    (tmp_path / "knowledge/risk/kelly.md").unlink()
    stats = kb.index_paths(["risk/kelly.md"])
    assert stats.deleted == 1 and stats["risk"] == 0
    stats = kb.index_paths(["risk/never-was.md"])
    assert stats.skipped[0].path == "risk/never-was.md"
    stats = kb.index_paths(["technical"])  # a folder: everything under it
    assert stats.unchanged == 2


def test_stats_as_dict_is_json_ready(kb: KnowledgeIndexer) -> None:
    stats = kb.index_all()
    data = orjson.loads(orjson.dumps(stats.as_dict()))
    assert data["chunks"]["technical"] == 2 and data["added"] == 3
    assert set(data["chunks"]) == set(DOMAINS)
    assert stats["added"] == 3
    with pytest.raises(KeyError):
        stats["astrology"]


# --- domains -----------------------------------------------------------------------------------

def test_domain_isolation(kb: KnowledgeIndexer) -> None:
    kb.index_all()
    assert [h.source for h in kb.search("zanzibar bet", domain="risk")][:1] == ["risk/kelly.md"]
    for search in (kb.search, kb.search_dense):
        hits = search("zanzibar bet formula", "technical", 5)
        assert hits and all(h.domain == "technical" for h in hits)
    assert kb.search_lexical("zanzibar bet formula", "technical") == []  # no such words there
    info = {d.domain: (d.files, d.chunks) for d in kb.overview()}
    assert info == {"technical": (2, 2), "risk": (1, 1), "sentiment": (0, 0),
                    "fundamental": (0, 0), "papers": (0, 0)}


def test_unknown_domain_is_refused(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    with pytest.raises(UnknownDomain, match="technical, sentiment, fundamental, risk, papers"):
        kb.index_all(["astrology"])
    with pytest.raises(UnknownDomain):
        kb.search("anything", domain="astrology")
    with pytest.raises(UnknownDomain):
        kb.index_paths(["astrology/stars.md"])
    write(tmp_path / "knowledge", "astrology/stars.md", "# Stars\n")
    stats = kb.index_all()
    assert [(s.path, "not a knowledge domain" in s.reason) for s in stats.skipped] == [("astrology", True)]
    assert "README" not in str(kb.lexical.files())  # top-level files are not domain documents


def test_a_missing_folder_is_an_error_not_an_empty_index(tmp_path: Path) -> None:
    indexer = KnowledgeIndexer(Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "nope"))
    with pytest.raises(NotFound, match="does not exist"):
        indexer.index_all()
    assert indexer.search_lexical("anything") == []


def test_search_request_validation() -> None:
    assert SearchRequest.model_validate({"query": "rsi"}).k == 5
    for bad in ({"query": ""}, {"query": "x" * 1001}, {"query": "rsi", "k": 0}, {"query": "rsi", "k": 51},
                {"query": "rsi", "domain": "astrology"}, {"query": "rsi", "top_k": 3}):
        with pytest.raises(ValidationError):
            SearchRequest.model_validate(bad)


# --- safety ------------------------------------------------------------------------------------

def test_paths_outside_the_folder_are_refused(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    outside = write(tmp_path, "secret.md", "# Secret\n\nDo not index me.\n")
    (tmp_path / "knowledge/technical/leak.md").symlink_to(outside)
    for path in ("../secret.md", "technical/../../secret.md", "..\\secret.md", str(outside),
                 "/etc/passwd", "technical/leak.md"):
        with pytest.raises(UnsafePath):
            kb.index_paths([path])
    with pytest.raises(BadRequest, match="only .md and .txt"):
        kb.index_paths(["technical/chart.png"])
    with pytest.raises(BadRequest, match="hidden"):
        kb.index_paths(["technical/.draft.md"])
    stats = kb.index_all()
    assert {(s.path, s.reason) for s in stats.skipped} == {
        ("technical/leak.md", "symlink points outside the knowledge folder")}
    assert kb.search_lexical("secret") == []


def test_bad_files_are_skipped_with_reasons(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    root = tmp_path / "knowledge"
    (root / "risk/binary.md").write_bytes(b"# Bin\n\x00\x01\x02")
    (root / "risk/latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    (root / "risk/huge.md").write_text("# Huge\n\n" + "x" * 1_000_001, encoding="utf-8")
    (root / "risk/chart.png").write_bytes(b"\x89PNG")
    stats = kb.index_all()
    reasons = {s.path: s.reason for s in stats.skipped}
    assert "binary" in reasons["risk/binary.md"]
    assert "not UTF-8" in reasons["risk/latin1.md"]
    assert "1,000,000-byte limit" in reasons["risk/huge.md"]
    assert "not a .md or .txt file" in reasons["risk/chart.png"]
    assert stats.added == 3 and stats["risk"] == 1

    (root / "risk/kelly.md").write_bytes(b"\x00 now binary")  # was indexed: its chunks go
    stats = kb.index_all()
    assert "earlier chunks were removed" in {s.path: s.reason for s in stats.skipped}["risk/kelly.md"]
    assert stats["risk"] == 0 and kb._vectors.count("risk") == 0


# --- inline documents --------------------------------------------------------------------------

def test_inline_documents_are_written_and_searchable(kb: KnowledgeIndexer, tmp_path: Path) -> None:
    doc = InlineDocument(domain="sentiment", title="Whale  Alert Spikes!",
                         text="Large transfers announced by whale-alert bots precede volatility.")
    stats = kb.add_documents([doc])
    path = tmp_path / "knowledge/sentiment/whale-alert-spikes.md"
    assert path.read_text(encoding="utf-8").startswith("# Whale Alert Spikes!\n\nLarge transfers")
    assert stats.added == 1 and stats["sentiment"] == 1
    hits = kb.search("whale transfers before volatility", domain="sentiment")
    assert hits[0].source == "sentiment/whale-alert-spikes.md" and hits[0].title == "Whale Alert Spikes!"

    again = kb.add_documents([doc.model_copy(update={"text": "# Own Title\n\nReplaced text."})])
    assert again.updated == 1
    assert path.read_text(encoding="utf-8") == "# Own Title\n\nReplaced text.\n"


def test_inline_document_limits() -> None:
    with pytest.raises(ValidationError):
        InlineDocument(domain="risk", title="x" * 201, text="t")
    with pytest.raises(ValidationError):
        InlineDocument(domain="risk", title="big", text="é" * 500_001)  # over 1 MB as UTF-8
    with pytest.raises(ValidationError):
        InlineDocument.model_validate({"domain": "astrology", "title": "t", "text": "t"})


# --- ranking on the shipped knowledge base -----------------------------------------------------

@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[KnowledgeIndexer]:
    """The repository's knowledge/ copied to a temporary folder and indexed once."""
    folder = tmp_path_factory.mktemp("shipped")
    shutil.copytree(REPO_ROOT / "knowledge", folder / "knowledge")
    indexer = KnowledgeIndexer(Settings(data_dir=folder / "data", knowledge_dir=folder / "knowledge"),
                               embedder=embedder)
    stats = indexer.index_all()
    assert stats.added >= 30 and not stats.skipped and all(stats[d] > 0 for d in DOMAINS)
    yield indexer
    indexer.close()


@pytest.mark.parametrize(("query", "source", "within"), [
    ("what RSI level means oversold", "technical/rsi.md", 1),
    ("how much of my capital should I bet given my edge", "risk/kelly-criterion.md", 3),
    ("MVRV Z-score", "fundamental/mvrv.md", 1),
    ("golden cross of the 50 and 200 day averages", "technical/moving-averages.md", 1),
    ("expected shortfall beyond VaR", "risk/var-cvar.md", 1),
])
def test_shipped_ranking(shipped: KnowledgeIndexer, query: str, source: str, within: int) -> None:
    hits = shipped.search(query, k=5)
    assert source in [h.source for h in hits[:within]], [(h.source, h.heading) for h in hits]


def test_hits_carry_their_place(shipped: KnowledgeIndexer) -> None:
    hit = shipped.search("Wilder smoothing RSI formula", domain="technical", k=1)[0]
    assert hit.source == "technical/rsi.md" and hit.domain == "technical"
    assert hit.title == "Relative Strength Index (RSI)" and "Wilder" in hit.heading
    assert hit.score > 0 and hit.chunk_id and "avg_gain" in hit.text


def test_odd_queries_do_not_raise(shipped: KnowledgeIndexer) -> None:
    for query in ['"', "*", "NEAR(", "-", ":", "AND OR NOT", "   ", "ä" * 1000]:
        for search in (shipped.search, shipped.search_dense, shipped.search_lexical):
            assert isinstance(search(query, None, 3), list)
