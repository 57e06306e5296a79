"""The sink every metric family writes into, and the numeric guards the families share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
Metric = float | int | None

ZERO = 1e-12  # a standard deviation below this counts as zero
MAX_EXP = 700.0  # exp() overflows a float64 a little above 709


@dataclass
class MetricSink:
    """Metrics and the reasons for the missing ones, so no family ever has to raise."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: float | int | None, reason: str = "not computable") -> None:
        """Record a plain finite number, or None with the reason why."""
        if isinstance(value, (float, np.floating)):
            value, reason = (float(value), reason) if math.isfinite(value) else (None, "non-finite")
        self.metrics[name] = value
        if value is None:
            self.reasons[name] = reason

    def skip(self, names: tuple[str, ...], reason: str) -> None:
        """Record several metrics as None for one reason."""
        for name in names:
            self.put(name, None, reason)

    def absorb(self, metrics: dict[str, Metric], reasons: dict[str, str]) -> None:
        """Take in another family's already-checked metrics and reasons."""
        self.metrics.update(metrics)
        self.reasons.update(reasons)


def grow(log_growth: float) -> float | None:
    """exp(log_growth) - 1, or None where it would overflow."""
    return math.expm1(log_growth) if log_growth < MAX_EXP else None
