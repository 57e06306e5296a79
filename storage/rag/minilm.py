"""MiniLM (BERT) weights from safetensors, and the reference encoder in plain numpy."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
# Sees the input of each layer's matmuls: (layer, "qkv" | "attn_out" | "ff_in" | "ff_out", x).
Observer = Callable[[int, str, F32], None]


@dataclass(frozen=True)
class Layer:
    """One encoder layer; matrices are (in, out) so that x @ w needs no transpose per call."""

    qkv_w: F32  # query, key and value fused: one matmul instead of three
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    ln1_g: F32
    ln1_b: F32
    ff_in_w: F32
    ff_in_b: F32
    ff_out_w: F32
    ff_out_b: F32
    ln2_g: F32
    ln2_b: F32


@dataclass(frozen=True)
class Bert:
    """The BERT encoder's weights and the few hyperparameters the forward pass needs."""

    word: F32
    position: F32
    token_type: F32  # row 0 only: sentence-transformers feeds single segments
    emb_ln_g: F32
    emb_ln_b: F32
    layers: tuple[Layer, ...]
    heads: int
    eps: float

    @property
    def hidden(self) -> int:
        """Width of the hidden state (384 for MiniLM-L6)."""
        return int(self.word.shape[1])


def load_bert(model_dir: Path) -> Bert:
    """Read config.json and model.safetensors into a Bert, fusing and pre-transposing matrices."""
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    raw = load_file(str(model_dir / "model.safetensors"))
    w = {k.removeprefix("bert."): v.astype(np.float32, copy=False) for k, v in raw.items()}
    layers = tuple(_layer(w, f"encoder.layer.{i}.") for i in range(config["num_hidden_layers"]))
    return Bert(
        word=w["embeddings.word_embeddings.weight"],
        position=w["embeddings.position_embeddings.weight"],
        token_type=w["embeddings.token_type_embeddings.weight"][0],
        emb_ln_g=w["embeddings.LayerNorm.weight"],
        emb_ln_b=w["embeddings.LayerNorm.bias"],
        layers=layers,
        heads=int(config["num_attention_heads"]),
        eps=float(config["layer_norm_eps"]),
    )


def _layer(w: dict[str, F32], p: str) -> Layer:
    """Collect one layer's tensors; torch Linear stores (out, in), hence the transposes."""
    att = p + "attention."
    qkv = [w[f"{att}self.{n}.weight"] for n in ("query", "key", "value")]
    return Layer(
        qkv_w=_t(np.concatenate(qkv, axis=0)),
        qkv_b=np.concatenate([w[f"{att}self.{n}.bias"] for n in ("query", "key", "value")]),
        attn_out_w=_t(w[att + "output.dense.weight"]),
        attn_out_b=w[att + "output.dense.bias"],
        ln1_g=w[att + "output.LayerNorm.weight"],
        ln1_b=w[att + "output.LayerNorm.bias"],
        ff_in_w=_t(w[p + "intermediate.dense.weight"]),
        ff_in_b=w[p + "intermediate.dense.bias"],
        ff_out_w=_t(w[p + "output.dense.weight"]),
        ff_out_b=w[p + "output.dense.bias"],
        ln2_g=w[p + "output.LayerNorm.weight"],
        ln2_b=w[p + "output.LayerNorm.bias"],
    )


def _t(m: F32) -> F32:
    """Transpose into a contiguous array, so BLAS sees a plain row-major matrix."""
    return np.ascontiguousarray(m.T)


class NumpyEncoder:
    """The reference forward pass: readable numpy, float32 throughout."""

    name = "numpy"

    def __init__(self, bert: Bert, observe: Observer | None = None) -> None:
        self._bert = bert
        self._observe = observe or _ignore

    def __call__(self, ids: I64, mask: I64) -> F32:
        """Last hidden state (batch, seq, hidden) for right-padded ids and their 0/1 mask."""
        b = self._bert
        x = b.word[ids] + b.position[: ids.shape[1]] + b.token_type
        x = _layer_norm(x, b.emb_ln_g, b.emb_ln_b, b.eps)
        # Padded keys get a large negative score, so softmax gives them no weight.
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for i, layer in enumerate(b.layers):
            x = self._layer(i, x, layer, bias)
        return x

    def _layer(self, i: int, x: F32, w: Layer, bias: F32) -> F32:
        """One post-LayerNorm BERT layer: attention, then the feed-forward block."""
        eps, seen = self._bert.eps, self._observe
        seen(i, "qkv", x)
        context = self._attention(x, w, bias)
        seen(i, "attn_out", context)
        x = _layer_norm(x + context @ w.attn_out_w + w.attn_out_b, w.ln1_g, w.ln1_b, eps)
        seen(i, "ff_in", x)
        h = _gelu(x @ w.ff_in_w + w.ff_in_b)
        seen(i, "ff_out", h)
        return _layer_norm(x + h @ w.ff_out_w + w.ff_out_b, w.ln2_g, w.ln2_b, eps)

    def _attention(self, x: F32, w: Layer, bias: F32) -> F32:
        """Multi-head scaled dot-product self-attention, heads concatenated back to (b, s, h)."""
        batch, seq, hidden = x.shape
        heads = self._bert.heads
        qkv = (x @ w.qkv_w + w.qkv_b).reshape(batch, seq, 3, heads, hidden // heads)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, seq, head_dim)
        scores = (q @ k.transpose(0, 1, 3, 2)) * (hidden // heads) ** -0.5 + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context: F32 = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        return context


def _ignore(layer: int, point: str, x: F32) -> None:
    """The default observer."""


def _layer_norm(x: F32, g: F32, b: F32, eps: float) -> F32:
    """LayerNorm over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y: F32 = (x - mean) / np.sqrt(var + np.float32(eps)) * g + b
    return y


def _gelu(x: F32) -> F32:
    """Exact (erf) GELU, the form BERT was trained with (not the tanh approximation)."""
    y: F32 = x * 0.5 * (1.0 + _erf(x * 0.5**0.5))
    return y


def _erf(x: F32) -> F32:
    """erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26): numpy has no erf, scipy is not a dep."""
    # Python float constants do not promote float32 arrays, so all of this stays float32.
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = np.zeros_like(t)
    for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly = (poly + c) * t  # Horner's rule, a5 first
    y: F32 = np.sign(x) * (1.0 - poly * np.exp(-a * a))
    return y
