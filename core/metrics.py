"""Backtest performance metrics from an equity curve, its BTC benchmark and FIFO round trips.

Each family states its own definitions: core.curve_metrics, core.benchmark_metrics and
core.trade_metrics. Shared by all (empyrical / quantstats conventions):
- Returns are simple period returns between consecutive curve points: r_i = v_i / v_{i-1} - 1.
  Points with a non-finite timestamp or value are dropped; the rest are sorted by time. Curve
  metrics need at least 2 points, all values > 0; ratios need at least 2 returns.
- periods_per_year (ppy) is the given value, else 365 * 86400 / median spacing (a 365-day
  crypto calendar: daily 365, hourly 8760, minute 525600). Annualized metrics need it.
- Per-period risk-free rate rf_p = (1 + risk_free_rate)^(1/ppy) - 1; excess = r - rf_p.
- Returns are measured on the curve alone; initial_capital is only echoed in `conventions`.
- A standard deviation below 1e-12 counts as zero. A metric that cannot be computed (or would
  be NaN/Infinity) is None, with the reason in `reasons`; nothing here raises on bad data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.benchmark_metrics import BENCHMARK_METRICS, put_benchmark_metrics
from core.curve_metrics import CURVE_METRICS, DRAWDOWN_KEYS, put_curve_metrics
from core.metric_sink import Array, Metric, MetricSink, grow
from core.pairing import PairingResult
from core.trade_metrics import TRADE_METRICS, put_trade_metrics

METRIC_NAMES = CURVE_METRICS + TRADE_METRICS + BENCHMARK_METRICS
DEFINITIONS = (
    "simple period returns r; ppy given or 365*86400/median spacing; rf_p=(1+rf)^(1/ppy)-1; "
    "volatility=std(r,ddof=1)*sqrt(ppy); sharpe=mean(r-rf_p)/std(r-rf_p,ddof=1)*sqrt(ppy); "
    "sortino=mean(r-rf_p)/sqrt(mean(min(r-rf_p,0)^2))*sqrt(ppy); cagr over calendar years of "
    "365.25 days between first and last point; calmar=cagr/|max_drawdown|; benchmark metrics "
    "over periods whose two benchmark values are >0; beta=cov(r,rb)/var(rb); "
    "alpha=(1+mean((r-rf_p)-beta*(rb-rf_p)))^ppy-1; tracking_error=std(r-rb,ddof=1)*sqrt(ppy); "
    "information_ratio=mean(r-rb)/std(r-rb,ddof=1)*sqrt(ppy); a trade is one FIFO exit fill "
    "with pnl net of fees; expectancy=mean pnl; exposure=share of curve time with a position open"
)
CRYPTO_YEAR = 365.0 * 86400.0  # for ppy: markets trade every day


@dataclass(frozen=True)
class CurveInput:
    """An equity curve: epoch-second timestamps, portfolio values, benchmark (NaN = missing)."""

    timestamps: Array
    values: Array
    benchmark: Array | None = None


@dataclass(frozen=True)
class MetricsResult:
    """Every metric (None when not computable), drawdown detail, reasons and conventions."""

    metrics: dict[str, Metric]
    max_drawdown_detail: dict[str, object]
    reasons: dict[str, str]
    conventions: dict[str, object]

    def as_dict(self) -> dict[str, object]:
        """The result as a JSON-ready dict."""
        return {
            "metrics": dict(self.metrics), "max_drawdown_detail": dict(self.max_drawdown_detail),
            "reasons": dict(self.reasons), "conventions": dict(self.conventions),
        }


def infer_periods_per_year(timestamps_seconds: Array) -> float | None:
    """Periods per year from the median spacing on a 365-day calendar; None if unknowable."""
    t = np.asarray(timestamps_seconds, dtype=np.float64)
    if t.size < 2:
        return None
    spacing = float(np.median(np.diff(t)))
    return CRYPTO_YEAR / spacing if math.isfinite(spacing) and spacing > 0 else None


def _clean(curve: CurveInput) -> tuple[Array, Array, Array | None]:
    """Drop unusable points, sort by time; the benchmark is None unless it lines up."""
    t = np.asarray(curve.timestamps, dtype=np.float64).ravel()
    v = np.asarray(curve.values, dtype=np.float64).ravel()
    b = None if curve.benchmark is None else np.asarray(curve.benchmark, dtype=np.float64).ravel()
    if t.size != v.size:
        return np.empty(0), np.empty(0), None
    if b is not None and b.size != t.size:
        b = None
    keep = np.isfinite(t) & np.isfinite(v)
    t, v, b = t[keep], v[keep], None if b is None else b[keep]
    if t.size > 1 and bool(np.any(np.diff(t) < 0)):
        order = np.argsort(t, kind="stable")
        t, v, b = t[order], v[order], None if b is None else b[order]
    return t, v, b


def _conventions(
    t: Array, given: float | None, rf: float
) -> tuple[dict[str, object], float | None, float | None]:
    """Resolve periods per year and the per-period risk-free rate; describe them."""
    usable = given is not None and math.isfinite(given) and given > 0
    ppy = float(given) if usable and given is not None else infer_periods_per_year(t)
    rf_ok = math.isfinite(rf) and rf > -1
    rf_p = grow(math.log1p(rf) / ppy) if ppy is not None and rf_ok else None
    conventions: dict[str, object] = {
        "periods_per_year": ppy, "periods_per_year_source": "given" if usable else "inferred",
        "risk_free_rate": float(rf) if math.isfinite(rf) else None, "definitions": DEFINITIONS,
    }
    return conventions, ppy, rf_p


@np.errstate(all="ignore")  # non-finite intermediates become None with a reason, not warnings
def compute_metrics(
    curve: CurveInput,
    pairing: PairingResult,
    *,
    periods_per_year: float | None = None,
    risk_free_rate: float = 0.0,
    initial_capital: float | None = None,
) -> MetricsResult:
    """Every curve, trade and benchmark metric; None with a reason wherever undefined."""
    sink = MetricSink()
    t, v, b = _clean(curve)
    conventions, ppy, rf_p = _conventions(t, periods_per_year, risk_free_rate)
    # Returns are measured on the curve itself; the capital is echoed so a report shows both.
    capital = initial_capital
    ok = capital is not None and math.isfinite(capital)
    conventions["initial_capital"] = float(capital) if ok and capital is not None else None
    detail: dict[str, object] = dict.fromkeys(DRAWDOWN_KEYS)
    if t.size < 2 or not bool(np.all(v > 0)):
        why = "fewer than 2 curve points" if t.size < 2 else "equity values must all be > 0"
        sink.skip(CURVE_METRICS + BENCHMARK_METRICS, why)
    else:
        r = v[1:] / v[:-1] - 1.0
        detail = put_curve_metrics(sink, t, v, r, ppy, rf_p)
        put_benchmark_metrics(sink, r, b, ppy, rf_p)
    put_trade_metrics(sink, pairing, t)
    metrics = {name: sink.metrics[name] for name in METRIC_NAMES}
    return MetricsResult(metrics, detail, sink.reasons, conventions)
