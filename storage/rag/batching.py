"""Batches of token ids for the encoders: length-sorted runs under a token budget, right-padding,
and sentence-transformers' pooling (mean over the mask, then unit length)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from storage.rag.minilm import F32, I64


def batches(lengths: Sequence[int], rows: int, tokens: int) -> Iterator[range]:
    """Consecutive runs of ascending LENGTHS: at most ROWS texts and TOKENS padded tokens (rows
    times the longest) each; a text longer than that goes alone."""
    start = 0
    while start < len(lengths):
        stop = start + 1
        while (stop < len(lengths) and stop - start < rows
               and (stop - start + 1) * lengths[stop] <= tokens):
            stop += 1
        yield range(start, stop)
        start = stop


def pad(seqs: list[I64]) -> tuple[I64, I64]:
    """Right-pad to the batch's longest sequence (pad id 0) with the matching 0/1 mask."""
    ids = np.zeros((len(seqs), max(len(s) for s in seqs)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def mean_pool(hidden: F32, mask: I64) -> F32:
    """Mean of the token vectors that the mask keeps (sentence-transformers' pooling)."""
    m = mask[..., None].astype(np.float32)
    pooled: F32 = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled


def normalise(v: F32) -> F32:
    """Rows scaled to unit length, with torch's epsilon for an all-zero row."""
    unit: F32 = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return unit
