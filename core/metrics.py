"""Backtest performance metrics from an equity curve, its BTC benchmark and FIFO round trips.

Definitions (empyrical / quantstats conventions):
- Returns are simple period returns between consecutive curve points: r_i = v_i / v_{i-1} - 1.
  Points with a non-finite timestamp or value are dropped; the rest are sorted by time. Curve
  metrics need at least 2 points, all values > 0; ratios need at least 2 returns.
- periods_per_year (ppy) is the given value, else 365 * 86400 / median spacing (a 365-day
  crypto calendar: daily 365, hourly 8760, minute 525600). Annualized metrics need it.
- Per-period risk-free rate rf_p = (1 + risk_free_rate)^(1/ppy) - 1; excess = r - rf_p.
- total_return = v_last / v_first - 1. cagr = (v_last / v_first)^(1/years) - 1 with
  years = (t_last - t_first) / (365.25 * 86400), calendar time between the first and last point.
- volatility = std(r, ddof=1) * sqrt(ppy). sharpe = mean(excess) / std(excess, ddof=1) * sqrt(ppy).
  sortino = mean(excess) / sqrt(mean(min(excess, 0)^2)) * sqrt(ppy), the downside deviation
  over all periods as in empyrical.
- max_drawdown = min(v / running_max(v) - 1) (<= 0). Peak = last point at the running high
  before the trough; recovery = first later point back at that high; duration = seconds from
  peak to recovery, or to the last point if not recovered. calmar = cagr / |max_drawdown|.
- Benchmark: only periods whose two benchmark values are both finite and > 0 are used, for
  the strategy too. benchmark_return compounds those periods; excess_return = total_return -
  benchmark_return. beta = cov(r, rb) / var(rb); correlation = Pearson; alpha =
  (1 + mean(excess - beta * (rb - rf_p)))^ppy - 1 (empyrical alpha_aligned); active = r - rb;
  tracking_error = std(active, ddof=1) * sqrt(ppy); information_ratio = mean(active) /
  std(active, ddof=1) * sqrt(ppy).
- Trades: one round trip per exit fill (see core.pairing), with its net pnl (fees included).
  win_rate = wins / trades (pnl > 0 wins, pnl < 0 losses, pnl == 0 neither); profit_factor =
  sum(wins) / |sum(losses)|; expectancy = mean pnl per round trip (currency); avg_loss and
  largest_loss are negative; total_fees sums every fill's fee; exposure = share of the curve's
  time span covered by the intervals with any open position.
- Returns are measured on the curve alone; initial_capital is only echoed in `conventions`.
- A standard deviation below 1e-12 counts as zero. A metric that cannot be computed (or would
  be NaN/Infinity) is None, with the reason in `reasons`; nothing here raises on bad data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from numpy.typing import NDArray

from core.pairing import PairingResult

Array = NDArray[np.float64]
Metric = float | int | None

CURVE_METRICS = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
)
TRADE_METRICS = (
    "trades", "win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss",
    "largest_win", "largest_loss", "total_fees", "exposure",
)
BENCHMARK_METRICS = (
    "benchmark_return", "excess_return", "alpha", "beta", "correlation",
    "information_ratio", "tracking_error",
)
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
CALENDAR_YEAR = 365.25 * 86400.0  # for cagr: calendar time
CRYPTO_YEAR = 365.0 * 86400.0  # for ppy: markets trade every day
ZERO = 1e-12
MAX_EXP = 700.0  # exp() overflows a float64 a little above 709


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


@dataclass
class _Sink:
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


def infer_periods_per_year(timestamps_seconds: Array) -> float | None:
    """Periods per year from the median spacing on a 365-day calendar; None if unknowable."""
    t = np.asarray(timestamps_seconds, dtype=np.float64)
    if t.size < 2:
        return None
    spacing = float(np.median(np.diff(t)))
    return CRYPTO_YEAR / spacing if math.isfinite(spacing) and spacing > 0 else None


def _iso(seconds: float) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string ending in Z; None beyond datetime's range."""
    try:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _grow(log_growth: float) -> float | None:
    """exp(log_growth) - 1, or None where it would overflow."""
    return math.expm1(log_growth) if log_growth < MAX_EXP else None


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


def _drawdown(t: Array, v: Array) -> tuple[float, dict[str, object]]:
    """Maximum drawdown with its peak, trough, recovery (ISO strings) and duration (seconds)."""
    dd = v / np.maximum.accumulate(v) - 1.0
    trough = int(np.argmin(dd))
    if dd[trough] >= 0:
        return 0.0, {"value": 0.0, "peak": None, "trough": None, "duration": 0.0, "recovery": None}
    peak = int(np.flatnonzero(dd[:trough] == 0)[-1])  # exactly 0 where v is the running high
    back = np.flatnonzero(dd[trough:] == 0)
    end = trough + int(back[0]) if back.size else None
    duration = t[end if end is not None else -1] - t[peak]
    return float(dd[trough]), {
        "value": float(dd[trough]), "peak": _iso(t[peak]), "trough": _iso(t[trough]),
        "duration": float(duration), "recovery": None if end is None else _iso(t[end]),
    }


def _risk(sink: _Sink, r: Array, ppy: float | None, rf_p: float | None) -> None:
    """Volatility, Sharpe and Sortino from the period returns."""
    if r.size < 2 or ppy is None:
        why = "fewer than 2 returns (3 curve points)" if r.size < 2 else "periods_per_year unknown"
        sink.skip(("volatility", "sharpe", "sortino"), why)
        return
    std = float(np.std(r, ddof=1))
    sink.put("volatility", std * math.sqrt(ppy))
    if rf_p is None:
        sink.skip(("sharpe", "sortino"), "no per-period risk-free rate")
        return
    excess = r - rf_p
    mean = float(np.mean(excess))
    sink.put("sharpe", mean / std * math.sqrt(ppy) if std > ZERO else None, "zero volatility")
    down = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    sortino = mean / down * math.sqrt(ppy) if down > ZERO else None
    sink.put("sortino", sortino, "no return below the risk-free rate (zero downside deviation)")


def _curve(
    sink: _Sink, t: Array, v: Array, r: Array, ppy: float | None, rf_p: float | None
) -> dict[str, object]:
    """Curve metrics into the sink; return the drawdown detail."""
    ratio = float(v[-1] / v[0])
    sink.put("total_return", ratio - 1.0)
    years = float(t[-1] - t[0]) / CALENDAR_YEAR
    growable = years > 0 and 0 < ratio < math.inf
    cagr = _grow(math.log(ratio) / years) if growable else None
    sink.put("cagr", cagr, "curve spans no time" if years <= 0 else "overflow: span too short")
    _risk(sink, r, ppy, rf_p)
    mdd, detail = _drawdown(t, v)
    sink.put("max_drawdown", mdd)
    calmar = cagr / abs(mdd) if cagr is not None and mdd < 0 else None
    sink.put("calmar", calmar, "no drawdown" if cagr is not None else "cagr unavailable")
    return detail


def _alpha(
    rs: Array, rb: Array, beta: float, ppy: float | None, rf_p: float | None
) -> tuple[float | None, str]:
    """Annualized alpha as empyrical's alpha_aligned, or None with the reason."""
    if ppy is None or rf_p is None:
        return None, "periods_per_year unknown" if ppy is None else "no per-period risk-free rate"
    per_period = float(np.mean((rs - rf_p) - beta * (rb - rf_p)))
    if per_period <= -1:
        return None, "mean period alpha <= -100%"
    return _grow(ppy * math.log1p(per_period)), "overflow when annualizing"


def _benchmark(
    sink: _Sink, r: Array, b: Array | None, ppy: float | None, rf_p: float | None
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
    bench = _grow(float(np.sum(np.log1p(rb))))
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
    if ppy is None:
        sink.skip(("information_ratio", "tracking_error"), "periods_per_year unknown")
        return
    active = rs - rb
    te = float(np.std(active, ddof=1))
    sink.put("tracking_error", te * math.sqrt(ppy))
    ir = float(np.mean(active)) / te * math.sqrt(ppy) if te > ZERO else None
    sink.put("information_ratio", ir, "zero tracking error")


def _exposure(intervals: list[tuple[float, float | None]], t: Array) -> tuple[float | None, str]:
    """Share of the curve's span with an open position, or None with the reason."""
    if t.size < 2 or t[-1] <= t[0]:
        return None, "curve spans no time"
    if not intervals:
        return 0.0, ""
    spans = np.array([(s, t[-1] if e is None else e) for s, e in intervals], dtype=np.float64)
    spans = np.clip(spans, t[0], t[-1])
    return min(1.0, float(np.sum(spans[:, 1] - spans[:, 0])) / float(t[-1] - t[0])), ""


def _trades(sink: _Sink, pairing: PairingResult, t: Array) -> None:
    """Trade metrics from the round trips (net pnl), fees and exposure."""
    pnl = np.array([trip.pnl for trip in pairing.round_trips], dtype=np.float64)
    sink.put("trades", int(pnl.size))
    sink.put("total_fees", pairing.total_fees)
    sink.put("exposure", *_exposure(pairing.exposure_intervals, t))
    if pnl.size == 0:
        sink.skip(TRADE_METRICS[1:8], "no closed trades")
        return
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    sink.put("win_rate", wins.size / pnl.size)
    sink.put("expectancy", float(np.mean(pnl)))
    pf = float(wins.sum()) / -float(losses.sum()) if losses.size else None
    sink.put("profit_factor", pf, "no losing trades")
    sink.put("avg_win", float(wins.mean()) if wins.size else None, "no winning trades")
    sink.put("largest_win", float(wins.max()) if wins.size else None, "no winning trades")
    sink.put("avg_loss", float(losses.mean()) if losses.size else None, "no losing trades")
    sink.put("largest_loss", float(losses.min()) if losses.size else None, "no losing trades")


def _conventions(
    t: Array, given: float | None, rf: float
) -> tuple[dict[str, object], float | None, float | None]:
    """Resolve periods per year and the per-period risk-free rate; describe them."""
    usable = given is not None and math.isfinite(given) and given > 0
    ppy = float(given) if usable and given is not None else infer_periods_per_year(t)
    rf_ok = math.isfinite(rf) and rf > -1
    rf_p = _grow(math.log1p(rf) / ppy) if ppy is not None and rf_ok else None
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
    sink = _Sink()
    t, v, b = _clean(curve)
    conventions, ppy, rf_p = _conventions(t, periods_per_year, risk_free_rate)
    # Returns are measured on the curve itself; the capital is echoed so a report shows both.
    capital = initial_capital
    ok = capital is not None and math.isfinite(capital)
    conventions["initial_capital"] = float(capital) if ok and capital is not None else None
    detail: dict[str, object] = dict.fromkeys(("value", "peak", "trough", "duration", "recovery"))
    if t.size < 2 or not bool(np.all(v > 0)):
        why = "fewer than 2 curve points" if t.size < 2 else "equity values must all be > 0"
        sink.skip(CURVE_METRICS + BENCHMARK_METRICS, why)
    else:
        r = v[1:] / v[:-1] - 1.0
        detail = _curve(sink, t, v, r, ppy, rf_p)
        _benchmark(sink, r, b, ppy, rf_p)
    _trades(sink, pairing, t)
    metrics = {name: sink.metrics[name] for name in METRIC_NAMES}
    return MetricsResult(metrics, detail, sink.reasons, conventions)
