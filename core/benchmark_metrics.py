"""Metrics of the strategy against its benchmark: alpha, beta, correlation, tracking error, IR.

Definitions (empyrical conventions): only periods whose two benchmark values are both finite
and > 0 are used, for the strategy too. benchmark_return compounds those periods;
excess_return = total_return - benchmark_return. beta = cov(r, rb) / var(rb); correlation =
Pearson; alpha = (1 + mean(excess - beta * (rb - rf_p)))^ppy - 1 (empyrical alpha_aligned);
active = r - rb; tracking_error = std(active, ddof=1) * sqrt(ppy); information_ratio =
mean(active) / std(active, ddof=1) * sqrt(ppy).
"""

from __future__ import annotations

import math

import numpy as np

from core.metric_sink import ZERO, Array, MetricSink, grow

BENCHMARK_METRICS = (
    "benchmark_return", "excess_return", "alpha", "beta", "correlation",
    "information_ratio", "tracking_error",
)


def _alpha(
    rs: Array, rb: Array, beta: float, ppy: float | None, rf_p: float | None
) -> tuple[float | None, str]:
    """Annualized alpha as empyrical's alpha_aligned, or None with the reason."""
    if ppy is None or rf_p is None:
        return None, "periods_per_year unknown" if ppy is None else "no per-period risk-free rate"
    per_period = float(np.mean((rs - rf_p) - beta * (rb - rf_p)))
    if per_period <= -1:
        return None, "mean period alpha <= -100%"
    return grow(ppy * math.log1p(per_period)), "overflow when annualizing"


def _active(sink: MetricSink, rs: Array, rb: Array, ppy: float | None) -> None:
    """Tracking error and information ratio from the active returns."""
    if ppy is None:
        sink.skip(("information_ratio", "tracking_error"), "periods_per_year unknown")
        return
    active = rs - rb
    te = float(np.std(active, ddof=1))
    sink.put("tracking_error", te * math.sqrt(ppy))
    ir = float(np.mean(active)) / te * math.sqrt(ppy) if te > ZERO else None
    sink.put("information_ratio", ir, "zero tracking error")


def put_benchmark_metrics(
    sink: MetricSink, r: Array, b: Array | None, ppy: float | None, rf_p: float | None
) -> None:
    """Benchmark-relative metrics over the periods with two valid benchmark values."""
    if b is None:
        sink.skip(BENCHMARK_METRICS, "no benchmark in the curve")
        return
    ok = np.isfinite(b) & (b > 0)
    use = ok[:-1] & ok[1:]
    n = int(np.count_nonzero(use))
    if n < 2:
        sink.skip(BENCHMARK_METRICS, f"{n} usable benchmark return(s), need 2 (gaps: None/0/NaN)")
        return
    rb, rs = b[1:][use] / b[:-1][use] - 1.0, r[use]
    bench = grow(float(np.sum(np.log1p(rb))))
    sink.put("benchmark_return", bench, "overflow")
    total = sink.metrics.get("total_return")
    sink.put("excess_return", None if bench is None or total is None else float(total) - bench)
    std_s, std_b = float(np.std(rs, ddof=1)), float(np.std(rb, ddof=1))
    cov = float(np.sum((rs - rs.mean()) * (rb - rb.mean()))) / (n - 1)
    beta = cov / std_b**2 if std_b > ZERO else None
    sink.put("beta", beta, "benchmark returns have zero variance")
    corr = cov / (std_s * std_b) if std_s > ZERO and std_b > ZERO else None
    corr = None if corr is None else max(-1.0, min(1.0, corr))  # rounding can step past ±1
    sink.put("correlation", corr, "strategy or benchmark returns have zero variance")
    alpha = _alpha(rs, rb, beta, ppy, rf_p) if beta is not None else (None, "beta unavailable")
    sink.put("alpha", *alpha)
    _active(sink, rs, rb, ppy)
