"""Metrics of the equity curve alone: total return, CAGR, volatility, Sharpe, Sortino, drawdown.

Definitions (empyrical / quantstats conventions), over the cleaned curve t, v (all v > 0) and its
simple period returns r:
- total_return = v_last / v_first - 1. cagr = (v_last / v_first)^(1/years) - 1 with
  years = (t_last - t_first) / (365.25 * 86400), calendar time between the first and last point.
- volatility = std(r, ddof=1) * sqrt(ppy). sharpe = mean(excess) / std(excess, ddof=1) * sqrt(ppy).
  sortino = mean(excess) / sqrt(mean(min(excess, 0)^2)) * sqrt(ppy), the downside deviation
  over all periods as in empyrical.
- max_drawdown = min(v / running_max(v) - 1) (<= 0). Peak = last point at the running high
  before the trough; recovery = first later point back at that high; duration = seconds from
  peak to recovery, or to the last point if not recovered. calmar = cagr / |max_drawdown|.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

from core.metric_sink import ZERO, Array, MetricSink, grow

CURVE_METRICS = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
)
CALENDAR_YEAR = 365.25 * 86400.0  # for cagr: calendar time
DRAWDOWN_KEYS = ("value", "peak", "trough", "duration", "recovery")


def _iso(seconds: float) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string ending in Z; None beyond datetime's range."""
    try:
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat().replace("+00:00", "Z")


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


def _risk(sink: MetricSink, r: Array, ppy: float | None, rf_p: float | None) -> None:
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


def put_curve_metrics(
    sink: MetricSink, t: Array, v: Array, r: Array, ppy: float | None, rf_p: float | None
) -> dict[str, object]:
    """Curve metrics into the sink, so a report shows them; return the drawdown detail."""
    ratio = float(v[-1] / v[0])
    sink.put("total_return", ratio - 1.0)
    years = float(t[-1] - t[0]) / CALENDAR_YEAR
    growable = years > 0 and 0 < ratio < math.inf
    cagr = grow(math.log(ratio) / years) if growable else None
    sink.put("cagr", cagr, "curve spans no time" if years <= 0 else "overflow: span too short")
    _risk(sink, r, ppy, rf_p)
    mdd, detail = _drawdown(t, v)
    sink.put("max_drawdown", mdd)
    calmar = cagr / abs(mdd) if cagr is not None and mdd < 0 else None
    sink.put("calmar", calmar, "no drawdown" if cagr is not None else "cagr unavailable")
    return detail
