"""From a BacktestCompleted event to the hub's analysis of it and its portable JSON report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import BadRequest
from core.events import BacktestCompleted
from core.metrics import CurveInput, MetricsResult, compute_metrics
from core.pairing import Fill as PairingFill
from core.pairing import PairingResult, pair_fifo

REPORT_VERSION = 2  # 2: the API's names, trade_log and metric_reasons (1 had trades, reasons)
V1_RENAMED = {"trades": "trade_log", "reasons": "metric_reasons"}  # version 1 key -> its name now


@dataclass(frozen=True)
class Analysis:
    """What the hub computes from a backtest: metrics, PnL per fill, the curve as columns."""

    metrics: MetricsResult
    pairing: PairingResult
    curve: NDArray[np.float64]  # shape (3, n): epoch seconds, value, benchmark (NaN = none)

    @property
    def open_positions(self) -> list[dict[str, Any]]:
        """Positions still open at the end, opened_at as ISO 8601 like every time we show."""
        return [{**position, "opened_at": _iso(datetime.fromtimestamp(float(position["opened_at"]), timezone.utc))}  # type: ignore[arg-type]
                for position in self.pairing.open_positions]

    @property
    def final_value(self) -> float | None:
        """The curve's last value."""
        return float(self.curve[1, -1]) if self.curve.shape[1] else None


def curve_columns(event: BacktestCompleted) -> NDArray[np.float64]:
    """The equity curve as float64 columns, in the event's order."""
    points = event.equity_curve
    return np.array(
        [[p.timestamp.timestamp() for p in points],
         [p.value for p in points],
         [np.nan if p.benchmark is None else p.benchmark for p in points]],
        dtype=np.float64,
    ).reshape(3, len(points))


def analyse(event: BacktestCompleted) -> Analysis:
    """Pair the fills FIFO and compute every metric (CPU work: call it off the event loop)."""
    curve = curve_columns(event)
    fills = [PairingFill(t.timestamp.timestamp(), t.asset, t.action, t.price, t.quantity, t.fee)
             for t in event.trades]
    pairing = pair_fifo(fills)
    metrics = compute_metrics(
        CurveInput(curve[0], curve[1], curve[2]), pairing,
        periods_per_year=event.periods_per_year, risk_free_rate=event.risk_free_rate,
        initial_capital=event.initial_capital,
    )
    return Analysis(metrics, pairing, curve)


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_report(
    backtest_id: int, event: BacktestCompleted, analysis: Analysis, created_at: datetime
) -> dict[str, Any]:
    """The report written to logs/: metadata, metrics, trade log with PnL, the curve.

    Its keys are the API's (GET /api/backtests/{id}): one name for one thing, file or REST.
    """
    pnl = analysis.pairing.pnl_per_fill
    analysed = analysis.metrics.as_dict()
    return {
        "report_version": REPORT_VERSION,
        "id": backtest_id,
        "event_id": event.event_id,
        "strategy": event.strategy,
        "parameters": event.parameters,
        "start": _iso(event.start),
        "end": _iso(event.end),
        "initial_capital": event.initial_capital,
        "final_value": analysis.final_value,
        "benchmark": event.benchmark,
        "periods_per_year": event.periods_per_year,
        "risk_free_rate": event.risk_free_rate,
        "created_at": _iso(created_at),
        "metrics": analysed["metrics"],
        "metric_reasons": analysed["reasons"],
        "max_drawdown_detail": analysed["max_drawdown_detail"],
        "conventions": analysed["conventions"],
        "runner": {"final_value": event.final_value, "metrics": event.metrics},
        "open_positions": analysis.open_positions,
        "trade_log": [
            {**fill.model_dump(mode="json"), "pnl": pnl[index]}
            for index, fill in enumerate(event.trades)
        ],
        "equity_curve": [point.model_dump(mode="json") for point in event.equity_curve],
    }


def current_report(report: dict[str, Any]) -> dict[str, Any]:
    """REPORT with today's keys, whichever version wrote it: old reports stay readable."""
    version = report.get("report_version", 1)
    if not isinstance(version, int) or not 1 <= version <= REPORT_VERSION:
        newer = isinstance(version, int) and version > REPORT_VERSION
        raise BadRequest(f"report_version {version!r} is not one this hub reads (1 to "
                         f"{REPORT_VERSION}){': a newer hub wrote it' if newer else ''}")
    if version == REPORT_VERSION:
        return report
    return {**{V1_RENAMED.get(key, key): value for key, value in report.items()},
            "report_version": REPORT_VERSION}


def event_from_report(report: dict[str, Any]) -> BacktestCompleted:
    """The event a report (of any version) was made from, to import it back."""
    report = current_report(report)
    runner = report.get("runner") or {}
    return BacktestCompleted.model_validate({
        **{k: report[k] for k in ("event_id", "strategy", "parameters", "start", "end",
                                   "initial_capital", "benchmark", "periods_per_year",
                                   "risk_free_rate", "equity_curve")},
        "trades": report["trade_log"],
        "final_value": runner.get("final_value"),
        "metrics": runner.get("metrics"),
    })
