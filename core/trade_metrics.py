"""Metrics of the trades: win rate, profit factor, expectancy, average and largest win and loss.

Definitions, over realized PnLs net of fees (a backtest's or a live agent's, one per exit fill
as core.pairing produces them): pnl > 0 wins, pnl < 0 losses, pnl == 0 neither. win_rate =
wins / trades; profit_factor = sum(wins) / |sum(losses)|; expectancy = mean pnl per round trip
(currency); avg_loss and largest_loss are negative. With fills at hand as well: total_fees sums
every fill's fee; exposure = share of the curve's time span covered by the intervals with any
open position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.metric_sink import Array, Metric, MetricSink
from core.pairing import PairingResult

PNL_METRICS = (
    "trades", "win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss",
    "largest_win", "largest_loss",
)
TRADE_METRICS = PNL_METRICS + ("total_fees", "exposure")


@dataclass
class PnlSums:
    """What the trade metrics need of a set of per-exit PnLs: counts, sums and extremes. Kept
    per live group as exits arrive, summed by SQL across groups, or taken of an array."""

    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_total: float = 0.0
    loss_total: float = 0.0  # negative
    largest_win: float | None = None
    largest_loss: float | None = None  # the most negative

    def add(self, pnl: float) -> None:
        """Count one more exit."""
        self.trades += 1
        if pnl > 0:
            self.wins, self.win_total = self.wins + 1, self.win_total + pnl
            self.largest_win = pnl if self.largest_win is None else max(self.largest_win, pnl)
        elif pnl < 0:
            self.losses, self.loss_total = self.losses + 1, self.loss_total + pnl
            self.largest_loss = pnl if self.largest_loss is None else min(self.largest_loss, pnl)

    @classmethod
    def of(cls, pnl: Sequence[float] | Array) -> PnlSums:
        """The sums of an array of PnLs."""
        values = np.asarray(pnl, dtype=np.float64).ravel()
        wins, losses = values[values > 0], values[values < 0]
        return cls(int(values.size), int(wins.size), int(losses.size), float(wins.sum()),
                   float(losses.sum()), float(wins.max()) if wins.size else None,
                   float(losses.min()) if losses.size else None)


def pnl_metrics(sums: PnlSums) -> tuple[dict[str, Metric], dict[str, str]]:
    """PNL_METRICS from the sums, None with a reason: the one definition, backtests and live."""
    sink = MetricSink()
    sink.put("trades", sums.trades)
    if sums.trades == 0:
        sink.skip(PNL_METRICS[1:], "no closed trades")
        return sink.metrics, sink.reasons
    sink.put("win_rate", sums.wins / sums.trades)
    sink.put("expectancy", (sums.win_total + sums.loss_total) / sums.trades)
    sink.put("profit_factor", sums.win_total / -sums.loss_total if sums.losses else None,
             "no losing trades")
    sink.put("avg_win", sums.win_total / sums.wins if sums.wins else None, "no winning trades")
    sink.put("largest_win", sums.largest_win, "no winning trades")
    sink.put("avg_loss", sums.loss_total / sums.losses if sums.losses else None, "no losing trades")
    sink.put("largest_loss", sums.largest_loss, "no losing trades")
    return sink.metrics, sink.reasons


@np.errstate(all="ignore")  # an overflowing sum becomes None ("non-finite"), not a warning
def trade_metrics(pnl: Sequence[float] | Array) -> tuple[dict[str, Metric], dict[str, str]]:
    """PNL_METRICS of per-exit realized PnLs."""
    return pnl_metrics(PnlSums.of(pnl))


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
