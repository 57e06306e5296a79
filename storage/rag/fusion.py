"""Reciprocal rank fusion: how lexical and dense rankings become one hybrid ranking."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion
Ranking = list[tuple[str, float]]


def fuse(rankings: Sequence[Ranking], k: int = RRF_K) -> Ranking:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the rankings, best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
