"""Metrics of the trades: win rate, profit factor, expectancy, average and largest win and loss.

Definitions, over realized PnLs net of fees (a backtest's or a live agent's, one per exit fill
as core.pairing produces them): pnl > 0 wins, pnl < 0 losses, pnl == 0 neither. win_rate =
wins / trades; profit_factor = sum(wins) / |sum(losses)|; expectancy = mean pnl per round trip
(currency); avg_loss and largest_loss are negative. With fills at hand as well: total_fees sums
every fill's fee; exposure = share of the curve's time span covered by the intervals with any
open position.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from core.metric_sink import Array, Metric, MetricSink
from core.pairing import PairingResult

PNL_METRICS = (
    "trades", "win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss",
    "largest_win", "largest_loss",
)
TRADE_METRICS = PNL_METRICS + ("total_fees", "exposure")


@np.errstate(all="ignore")  # an overflowing sum becomes None ("non-finite"), not a warning
def trade_metrics(pnl: Sequence[float] | Array) -> tuple[dict[str, Metric], dict[str, str]]:
    """PNL_METRICS of per-exit realized PnLs, None with a reason: shared by backtests and live."""
    sink = MetricSink()
    values = np.asarray(pnl, dtype=np.float64).ravel()
    sink.put("trades", int(values.size))
    if values.size == 0:
        sink.skip(PNL_METRICS[1:], "no closed trades")
        return sink.metrics, sink.reasons
    wins, losses = values[values > 0], values[values < 0]
    sink.put("win_rate", wins.size / values.size)
    sink.put("expectancy", float(np.mean(values)))
    pf = float(wins.sum()) / -float(losses.sum()) if losses.size else None
    sink.put("profit_factor", pf, "no losing trades")
    sink.put("avg_win", float(wins.mean()) if wins.size else None, "no winning trades")
    sink.put("largest_win", float(wins.max()) if wins.size else None, "no winning trades")
    sink.put("avg_loss", float(losses.mean()) if losses.size else None, "no losing trades")
    sink.put("largest_loss", float(losses.min()) if losses.size else None, "no losing trades")
    return sink.metrics, sink.reasons


def _exposure(intervals: list[tuple[float, float | None]], t: Array) -> tuple[float | None, str]:
    """Share of the curve's span with an open position, or None with the reason."""
    if t.size < 2 or t[-1] <= t[0]:
        return None, "curve spans no time"
    if not intervals:
        return 0.0, ""
    spans = np.array([(s, t[-1] if e is None else e) for s, e in intervals], dtype=np.float64)
    spans = np.clip(spans, t[0], t[-1])
    return min(1.0, float(np.sum(spans[:, 1] - spans[:, 0])) / float(t[-1] - t[0])), ""


def put_trade_metrics(sink: MetricSink, pairing: PairingResult, t: Array) -> None:
    """Every TRADE_METRICS entry from a backtest's round trips, fees and open intervals."""
    metrics, reasons = trade_metrics([trip.pnl for trip in pairing.round_trips])
    # Count, fees and exposure first: the order reports have always listed reasons in.
    sink.put("trades", metrics["trades"])
    sink.put("total_fees", pairing.total_fees)
    sink.put("exposure", *_exposure(pairing.exposure_intervals, t))
    sink.absorb(metrics, reasons)
