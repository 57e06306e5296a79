"""Reciprocal rank fusion: how lexical and dense rankings become one hybrid ranking."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion
Ranking = list[tuple[str, float]]
# Lexical rankings run here while the caller's thread makes the dense one: both wait in C code
# (FTS5; onnxruntime and Chroma), so a hybrid search takes the longer of the two, not the sum.
_LEXICAL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lexical-ranking")


def hybrid(dense: Callable[[], Ranking], lexical: Callable[[], Ranking]) -> Ranking:
    """The dense and the lexical ranking, made at the same time, fused."""
    words = _LEXICAL.submit(lexical)
    return fuse([dense(), words.result()])


def fuse(rankings: Sequence[Ranking], k: int = RRF_K) -> Ranking:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the rankings, best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
