"""Downsampling a curve for charts without losing its peaks and troughs."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def minmax_indices(values: NDArray[np.float64], points: int) -> NDArray[np.int64]:
    """Indices of about POINTS samples: first, last, and each bucket's minimum and maximum."""
    count = len(values)
    if points >= count:
        return np.arange(count, dtype=np.int64)
    buckets = max(1, (points - 2) // 2)
    edges = np.linspace(0, count, buckets + 1).astype(np.int64)
    keep = [0, count - 1]
    for low, high in zip(edges[:-1], edges[1:]):
        if high > low:
            segment = values[low:high]
            keep += [low + int(np.nanargmin(segment)), low + int(np.nanargmax(segment))]
    return np.unique(np.array(keep, dtype=np.int64))
