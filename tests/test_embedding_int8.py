"""The int8 encoder: within cosine 0.99 of float32 on every evaluation text, exact rewrites, and
the HUB_EMBEDDING_PRECISION setting that chooses it (figures in tests/bench/RESULTS.md)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from core.knowledge import DOMAINS
from core.settings import REPO_ROOT, Settings
from storage.rag.batching import batches, pad
from storage.rag.chunking import chunk_document
from storage.rag.embedding import Embedder, model_dir, shared_embedder
from storage.rag.files import read_file, walk
from storage.rag.indexer import KnowledgeIndexer
from storage.rag.minilm import load_bert
from storage.rag.minilm_int8 import CALIBRATION, activation_maxima, build_int8_model
from storage.rag.minilm_onnx import build_model, run, session
from tests.bench.eval_knowledge import load_cases
from tests.support.reasoning_eval import QUERIES, eval_trades

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")


def knowledge_chunks() -> list[str]:
    """The shipped knowledge base's chunks, cut as the indexer cuts them."""
    root = REPO_ROOT / "knowledge"
    sources = [source for domain in DOMAINS for source in walk(root, domain)[0]]
    return [c.text for s in sources for c in chunk_document(read_file(root / s).text, s)]


def evaluation_texts() -> dict[str, list[str]]:
    """Every text of both evaluations: the knowledge chunks and questions, the reasoning texts
    and queries."""
    return {"knowledge chunks": knowledge_chunks(),
            "knowledge questions": [query for query, _ in load_cases()],
            "reasoning texts": list(dict.fromkeys(t.reasoning for t in eval_trades())),
            "reasoning queries": [query for query, _, _ in QUERIES]}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Embedder, Embedder]]:
    """The float32 and the int8 embedder."""
    yield Embedder(precision="float32"), Embedder(precision="int8")


def test_int8_stays_within_0_99_of_float32_on_every_evaluation_text(pair: tuple[Embedder, Embedder]) -> None:
    exact, fast = pair
    assert (exact.backend, fast.backend) == ("onnx", "onnx-int8")
    for name, texts in evaluation_texts().items():
        cos = (exact.embed(texts) * fast.embed(texts)).sum(axis=1)
        worst = int(np.argmin(cos))
        assert cos.min() >= 0.99, (name, texts[worst], float(cos[worst]))
    # Queries are embedded one at a time when searched: alone in their batch.
    for query in evaluation_texts()["knowledge questions"] + evaluation_texts()["reasoning queries"]:
        assert float(exact.embed_query(query) @ fast.embed_query(query)) >= 0.99, query


def test_int8_vectors_are_unit_rows_in_input_order(pair: tuple[Embedder, Embedder]) -> None:
    exact, fast = pair
    texts = ["hedge", knowledge_chunks()[0], "RSI", "", "funding negative, shorts crowded"]
    got = fast.embed(texts, batch_size=2)
    assert got.shape == (5, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * exact.embed(texts)).sum(axis=1).min() >= 0.99


def test_the_rewrites_before_quantizing_are_exact_in_float32(pair: tuple[Embedder, Embedder]) -> None:
    bert = load_bert(model_dir())
    maxima = activation_maxima(bert, [pair[0]._ids(text) for text in CALIBRATION])
    plain, rewritten = session(build_model(bert), 2), session(build_int8_model(bert, maxima, False), 2)
    ids, mask = pad([pair[0]._ids(text) for text in ["hedge", *knowledge_chunks()[:7]]])
    real = mask.astype(bool)
    assert np.abs(run(plain, ids, mask) - run(rewritten, ids, mask))[real].max() <= 1e-4


def test_the_setting_chooses_the_precision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HUB_EMBEDDING_PRECISION", raising=False)
    assert Settings(_env_file=None).embedding_precision == "int8"
    for precision, backend, model in [("float32", "onnx", "all-MiniLM-L6-v2"),
                                      ("int8", "onnx-int8", "all-MiniLM-L6-v2+int8-w7")]:
        monkeypatch.setenv("HUB_EMBEDDING_PRECISION", precision)
        indexer = KnowledgeIndexer(Settings(data_dir=tmp_path))
        assert indexer.embedder.backend == backend and indexer.embedder.model_id == model
        assert indexer.embedder is shared_embedder(precision)
    monkeypatch.setenv("HUB_EMBEDDING_PRECISION", "int4")
    with pytest.raises(ValidationError):
        Settings()


def test_numpy_is_float32_only() -> None:
    assert Embedder(backend="numpy").precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        Embedder(backend="numpy", precision="int8")
    with pytest.raises(ValueError, match="precision"):
        Embedder(precision="int4")


def test_batches_hold_at_most_their_rows_and_tokens() -> None:
    lengths = [3, 3, 4, 10, 10, 10, 300]
    got = [list(b) for b in batches(lengths, rows=2, tokens=25)]
    assert got == [[0, 1], [2, 3], [4, 5], [6]]  # two rows at most; 2 x 10 <= 25
    assert [list(b) for b in batches(lengths, rows=32, tokens=30)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], rows=32, tokens=30)) == []
