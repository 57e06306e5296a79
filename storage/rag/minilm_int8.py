"""The int8 encoder: MiniLM's four matrices per layer run by onnxruntime's int8 kernels.

Built at load time from the same weights as the float32 graph; nothing is downloaded or stored.
Weights are int8 per output column (7 bits of it, see WEIGHT_LEVELS); activations are
quantized per batch (onnxruntime's dynamic quantization: one uint8 scale per tensor). Done plainly that loses too much on short texts
(cosine 0.978 to float32): a few activation channels, mostly of the [CLS] token, are ten times
larger than the rest and set the scale. Two rewrites, exact in float32, take them out first:

- SmoothQuant (Xiao et al. 2022): the inputs of qkv, attn_out and ff_in are divided per channel
  by s = max|x|^0.5 / max|w|^0.5 and the weight rows multiplied by it. For attn_out the division
  is folded into the value columns of qkv (attention is linear in V); the others cost a Mul.
- The OUTLIERS largest channels of the ff_in and ff_out inputs skip the int8 matmul: they are
  gathered and multiplied in float32 (LLM.int8()'s decomposition, Dettmers et al. 2022).
  SmoothQuant cannot help ff_out: its input is GELU's, whose negative floor it would amplify.

The channel maxima come from the float32 reference encoder run over CALIBRATION, a fixed list,
so the graph (and so the vectors) never depend on the user's documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage.rag.minilm import F32, I64, Bert, Layer, NumpyEncoder
from storage.rag.minilm_onnx import MS, embedding, node, run, serialize, session

ALPHA = 0.5  # SmoothQuant's migration strength: half of the range moves into the weights
OUTLIERS = 4  # channels of each feed-forward input kept in float32 (of 384 and 1536)
# Weights use 7 of int8's bits. On x86 without VNNI, onnxruntime multiplies uint8 activations by
# int8 weights with vpmaddubsw, which adds two products into an int16 and saturates: 2 * 255 *
# 127 overflows it, 2 * 255 * 63 does not. With all 8 bits, a host without VNNI gave vectors at
# cosine 0.962 to float32's; with 7, every host computes the same exact integer sums.
WEIGHT_LEVELS = 63
CALIBRATION = (
    "BTC broke above the range high on rising volume; long with a stop under the breakout.",
    "RSI(14) at 23 on ETH, oversold after the liquidation cascade, scaling in.",
    "Funding turned negative while open interest climbed: shorts are crowded.",
    "Stop loss hit below support, position closed, loss within the 1% risk budget.",
    "hedge",
    "How do I avoid look-ahead bias in a backtest?",
    ("Position sizing: risk a fixed fraction of equity per trade, and size the position so that "
     "the distance to the stop loss equals that fraction. Volatility-adjusted sizing uses the "
     "average true range instead of a fixed percentage, so positions shrink when markets get wild."),
    ("The Sharpe ratio divides the mean excess return by its standard deviation; maximum drawdown "
     "is the largest peak-to-trough fall of equity."),
)
Maxima = list[dict[str, F32]]  # per layer, per matmul: max |input| of each channel


def activation_maxima(bert: Bert, texts: list[I64]) -> Maxima:
    """Each layer's matmul inputs' per-channel max |x| over the texts, in float32."""
    maxima: Maxima = [{} for _ in bert.layers]

    def observe(layer: int, point: str, x: F32) -> None:
        seen = np.abs(x).max(axis=(0, 1))
        maxima[layer][point] = np.maximum(maxima[layer].get(point, seen), seen)

    encoder = NumpyEncoder(bert, observe)
    for ids in texts:  # one at a time: no padding to mask out of the maxima
        encoder(ids[None, :], np.ones((1, len(ids)), dtype=np.int64))
    return maxima


def smoothing(x_max: F32, w: F32) -> F32:
    """SmoothQuant's per-channel divisor of the input (and multiplier of the weight rows)."""
    w_max = np.abs(w).max(axis=1)
    s: F32 = (np.maximum(x_max, 1e-5) ** ALPHA / np.maximum(w_max, 1e-5) ** (1 - ALPHA))
    return s.astype(np.float32)


def quantize_columns(w: F32) -> tuple[NDArray[np.int8], F32]:
    """Symmetric int8 per output column, and the columns' scales."""
    scale = np.abs(w).max(axis=0) / WEIGHT_LEVELS
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q: NDArray[np.int8] = np.clip(np.rint(w / scale), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
    return q, scale


class _Graph:
    """Nodes and initializers being collected, with the quantized building blocks."""

    def __init__(self, bert: Bert, quantized: bool) -> None:
        self.bert, self.quantized = bert, quantized
        self.inits: dict[str, NDArray[Any]]
        self.inits, self.nodes = embedding(bert)

    def add(self, op: str, inputs: list[str], outputs: list[str], domain: str = "",
            **attrs: float) -> None:
        self.nodes.append(node(op, inputs, outputs, domain, **attrs))

    def weight(self, name: str, w: F32) -> list[str]:
        """Register w as int8 columns; returns the names of (values, scales, zero points)."""
        q, scale = quantize_columns(w)
        self.inits.update({name + ".q": q, name + ".scale": scale,
                           name + ".zero": np.zeros(scale.shape, dtype=np.int8)})
        return [name + ".q", name + ".scale", name + ".zero"]

    def mul(self, name: str, x: str, by: F32) -> str:
        self.inits[name] = by.astype(np.float32)
        self.add("Mul", [x, name], [name + ".out"])
        return name + ".out"

    def matmul(self, name: str, x: str, w: F32, out: str) -> None:
        """out = x @ w, x quantized per tensor on the fly (or float32, to test the rewrites)."""
        if self.quantized:
            self.add("DynamicQuantizeMatMul", [x, *self.weight(name, w)], [out], MS)
        else:
            self.inits[name] = w
            self.add("MatMul", [x, name], [out])

    def attention(self, p: str, x: str, qkv_w: F32) -> None:
        """The attention block, its qkv projection quantized (or float32) on the fly."""
        if not self.quantized:
            self.inits[p + "qkv_w"] = qkv_w
            self.add("Attention", [x, p + "qkv_w", p + "qkv_b", "attention_mask"], [p + "ctx"], MS,
                     num_heads=self.bert.heads)
            return
        self.add("DynamicQuantizeLinear", [x], [p + "xq", p + "xq.scale", p + "xq.zero"])
        q, scale, zero = self.weight(p + "qkv", qkv_w)
        self.add("QAttention", [p + "xq", q, p + "qkv_b", p + "xq.scale", scale, "attention_mask",
                                p + "xq.zero", zero], [p + "ctx"], MS, num_heads=self.bert.heads)

    def split_matmul(self, name: str, x: str, w: F32, x_max: F32, smooth: bool, out: str) -> None:
        """out = x @ w, the OUTLIERS largest channels in float32 and the rest (smoothed) in int8."""
        outliers = np.sort(np.argsort(x_max)[-OUTLIERS:]).astype(np.int64)
        s = smoothing(x_max, w) if smooth else np.ones(len(x_max), dtype=np.float32)
        keep, rows = 1.0 / s, w * s[:, None]
        keep[outliers], rows[outliers] = 0.0, 0.0  # so they widen neither scale
        self.matmul(name, self.mul(name + ".keep", x, keep), rows, name + ".int8")
        self.inits.update({name + ".idx": outliers, name + ".w": np.ascontiguousarray(w[outliers])})
        self.add("Gather", [x, name + ".idx"], [name + ".x_out"], axis=-1)
        self.add("MatMul", [name + ".x_out", name + ".w"], [name + ".float"])
        self.add("Add", [name + ".int8", name + ".float"], [out])

    def layer(self, i: int, w: Layer, maxima: dict[str, F32]) -> None:
        """One BERT layer, as the float32 graph's, with its four matmuls in int8."""
        p, x, eps, hidden = f"l{i}.", f"h{i}", self.bert.eps, self.bert.hidden
        # attn_out's smoothing, folded into the value columns of qkv.
        s_ctx = smoothing(maxima["attn_out"], w.attn_out_w)
        qkv_w, qkv_b = w.qkv_w.copy(), w.qkv_b.copy()
        qkv_w[:, 2 * hidden:] /= s_ctx
        qkv_b[2 * hidden:] /= s_ctx
        s_x = smoothing(maxima["qkv"], qkv_w)
        self.inits.update({p + n: getattr(w, n) for n in (
            "attn_out_b", "ln1_g", "ln1_b", "ff_in_b", "ff_out_b", "ln2_g", "ln2_b")})
        self.inits[p + "qkv_b"] = qkv_b
        self.attention(p, self.mul(p + "qkv.smooth", x, 1.0 / s_x), qkv_w * s_x[:, None])
        self.matmul(p + "attn_out", p + "ctx", w.attn_out_w * s_ctx[:, None], p + "attn")
        self.add("SkipLayerNormalization", [p + "attn", x, p + "ln1_g", p + "ln1_b", p + "attn_out_b"],
                 [p + "x1"], MS, epsilon=eps)
        self.split_matmul(p + "ff_in", p + "x1", w.ff_in_w, maxima["ff_in"], True, p + "ff")
        self.add("BiasGelu", [p + "ff", p + "ff_in_b"], [p + "act"], MS)
        self.split_matmul(p + "ff_out", p + "act", w.ff_out_w, maxima["ff_out"], False, p + "ffo")
        self.add("SkipLayerNormalization", [p + "ffo", p + "x1", p + "ln2_g", p + "ln2_b", p + "ff_out_b"],
                 [f"h{i + 1}"], MS, epsilon=eps)


def build_int8_model(bert: Bert, maxima: Maxima, quantized: bool = True) -> bytes:
    """Serialized ONNX model with the float32 graph's inputs and output, its matmuls in int8.
    quantized=False: the same rewrites in float32, which must give the float32 graph's output."""
    graph = _Graph(bert, quantized)
    for i, layer in enumerate(bert.layers):
        graph.layer(i, layer, maxima[i])
    return serialize(bert, graph.inits, graph.nodes)


class Int8Encoder:
    """Runs the int8 graph on onnxruntime, calibrated with the given tokenizer."""

    name = "onnx-int8"

    def __init__(self, bert: Bert, threads: int, tokenize: Callable[[str], I64]) -> None:
        maxima = activation_maxima(bert, [tokenize(text) for text in CALIBRATION])
        self._session = session(build_int8_model(bert, maxima), threads)

    def __call__(self, ids: I64, mask: I64) -> F32:
        """Last hidden state (batch, seq, hidden) for right-padded ids and their 0/1 mask."""
        return run(self._session, ids, mask)
