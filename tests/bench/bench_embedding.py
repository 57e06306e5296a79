"""Throughput of our MiniLM embedder (int8 and float32) against sentence-transformers on CPU
torch, in one run.

    python tests/bench/bench_embedding.py --chunks 512 [--text shipped|synthetic]

Embeds the chunks with each implementation: with --text shipped (the default) the chunks of the
documents in knowledge/, as the indexer cuts them (their lengths vary, which is where our
token-length batching gains), else ~500-character synthetic trading-text chunks (all about one
length). sentence-transformers gets batches of 32; ours batches by length (up to 32 texts and
TOKENS_PER_BATCH padded tokens). The implementations take turns round by round, and which one
goes first alternates between rounds (the first of a pair runs on a cooler machine); medians are
reported, each as a ratio of sentence-transformers' and of our float32's.
sentence-transformers is measured when it is importable in this interpreter; otherwise only our
backends are. To compare, install it next to ours (torch pinned first, or pip pulls CUDA):

    pip install torch==2.13.0 sentence-transformers
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# The numpy backend's BLAS reads its thread count once, when numpy is first imported.
_THREADS = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
os.environ.setdefault("OPENBLAS_NUM_THREADS", _THREADS)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # sentence-transformers must not reach for the hub
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from storage.rag.embedding import Embedder, model_dir  # noqa: E402

Embed = Callable[[Sequence[str]], np.ndarray]
OURS = {"onnx-int8": ("onnx", "int8"), "onnx": ("onnx", "float32"), "numpy": ("numpy", "float32")}

ASSETS = ["BTC", "ETH", "SOL", "AVAX", "LINK", "XRP", "DOGE", "ARB"]
SENTENCES = [
    "{a} closed the 4h candle above the {n}-period EMA while volume rose {p}% over its average.",
    "The agent went long {a} at {x} because RSI recovered from {n} and funding turned negative.",
    "Stop-loss sits {p}% below entry, under the last swing low, sizing risk at 1% of equity.",
    "MACD crossed its signal line on the daily chart, but the histogram is still shrinking.",
    "Open interest in {a} perpetuals climbed to {x} million while spot premiums stayed flat.",
    "The backtest from 2021 to 2024 returned {p}% with a Sharpe of 1.{n} and max drawdown of {p}%.",
    "Bollinger Bands narrowed to their tightest width in {n} days, a squeeze that often precedes a move.",
    "Take profit was split in thirds at {x}, {x} and a trailing stop of {p} ATR.",
    "Confidence is {n}/100: the breakout lacks follow-through and order book depth thinned on the bid.",
    "Liquidations of {x} million in {a} longs cascaded through support before buyers absorbed them.",
]


def make_chunks(count: int, size: int = 500, seed: int = 7) -> list[str]:
    """Deterministic trading prose, cut at a word boundary near `size` characters."""
    rng = random.Random(seed)
    chunks = []
    for _ in range(count):
        text = ""
        while len(text) < size:
            text += rng.choice(SENTENCES).format(
                a=rng.choice(ASSETS), n=rng.randint(9, 99), p=rng.randint(2, 40), x=rng.randint(100, 90000)
            ) + " "
        chunks.append(text[:size].rsplit(" ", 1)[0])
    return chunks


def shipped_chunks(count: int) -> list[str]:
    """The knowledge folder's chunks as the indexer makes them, repeated up to COUNT."""
    from storage.rag.chunking import chunk_document

    root = Path(__file__).resolve().parents[2] / "knowledge"
    texts = [c.text for f in sorted(root.rglob("*.md"))
             for c in chunk_document(f.read_text(encoding="utf-8"), f.name)]
    return [texts[i % len(texts)] for i in range(count)]


def sentence_transformers_embed(threads: int) -> Embed | None:
    """sentence-transformers on CPU torch with `threads` threads, or None when not installed."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers is not installed here; to compare, run:\n"
              "    pip install torch==2.13.0 sentence-transformers\n")
        return None
    torch.set_num_threads(threads)
    model = SentenceTransformer(str(model_dir()), device="cpu")
    print(f"reference: sentence-transformers, torch {torch.__version__}, {torch.get_num_threads()} threads")

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=32, show_progress_bar=False))

    return embed


def measure(embed: Embed, chunks: list[str]) -> float:
    """Chunks per second for one pass over all chunks."""
    start = time.perf_counter()
    embed(chunks)
    return len(chunks) / (time.perf_counter() - start)


def main() -> None:
    """Run the interleaved rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=int(_THREADS))
    parser.add_argument("--backends", default="onnx-int8,onnx",
                        help=f"ours to measure, comma-separated, of {', '.join(OURS)}")
    parser.add_argument("--text", choices=("shipped", "synthetic"), default="shipped")
    args = parser.parse_args()

    chunks = shipped_chunks(args.chunks) if args.text == "shipped" else make_chunks(args.chunks)
    print(f"{len(chunks)} chunks of ~{sum(map(len, chunks)) // len(chunks)} chars, "
          f"{args.threads} threads, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    impls: dict[str, Embed] = {}
    for name in args.backends.split(","):
        backend, precision = OURS[name]
        started = time.perf_counter()
        emb = Embedder(threads=args.threads, backend=backend, precision=precision)
        print(f"ours/{emb.backend}: loaded in {time.perf_counter() - started:.2f} s")
        impls[f"ours/{emb.backend}"] = emb.embed
    reference = sentence_transformers_embed(args.threads)
    if reference is not None:
        impls["sentence-transformers"] = reference
    parity({name: embed(chunks[:64]) for name, embed in impls.items()})  # warm-up, too

    rates: dict[str, list[float]] = {name: [] for name in impls}
    for r in range(args.rounds):
        order = list(impls.items()) if r % 2 == 0 else list(impls.items())[::-1]
        for name, embed in order:
            rates[name].append(measure(embed, chunks))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in rates.items()))

    medians = {name: statistics.median(v) for name, v in rates.items()}
    print("\nmedian chunks/s:")
    for name, rate in medians.items():
        ratios = [f"{rate / medians[of]:.2f}x {of}" for of in ("sentence-transformers", "ours/onnx")
                  if of in medians and of != name]
        print(f"  {name:24s} {rate:7.1f}" + (f"  ({', '.join(ratios)})" if ratios else ""))


def parity(vectors: dict[str, np.ndarray]) -> None:
    """Min cosine of each of ours to sentence-transformers' and to our float32 vectors."""
    for of in ("sentence-transformers", "ours/onnx"):
        for name, v in vectors.items():
            if of in vectors and name not in (of, "sentence-transformers"):
                cos = (v * vectors[of]).sum(axis=1)
                print(f"min cosine {name} vs {of} on {len(v)} chunks: {cos.min():.6f}")


if __name__ == "__main__":
    main()
