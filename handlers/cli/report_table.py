"""The terminal view of a backtest report: its trade log as an aligned table, then totals."""

from __future__ import annotations

from typing import Any

from core.backtest_report import current_report

HEADLINE = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate",
            "profit_factor", "trades")
PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate"}
COLUMNS = ("time", "asset", "action", "price", "quantity", "pnl", "conf", "reasoning")
REASONING_WIDTH = 48


def _number(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _shorten(text: str, width: int = REASONING_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (trade["timestamp"].replace("T", " ").rstrip("Z")[:19], trade["asset"], trade["action"],
         _number(trade["price"]), _number(trade["quantity"], 6).rstrip("0").rstrip("."),
         _number(trade["pnl"]), _number(trade["confidence"], 0), _shorten(trade["reasoning"]))
        for trade in report["trade_log"]
    ]


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    numeric = {"price", "quantity", "pnl", "conf"}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if name in numeric else cell.ljust(w)
                 for name, cell, w in zip(COLUMNS, row, widths)]
        return "  ".join(cells).rstrip()

    return [line(COLUMNS), "  ".join("-" * w for w in widths), *map(line, rows)]


def _metric(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2%}" if name in PERCENT else f"{value:,.2f}" if isinstance(value, float) else str(value)


def render_trade_log(report: dict[str, Any]) -> str:
    """The report's trade log, totals and headline metrics, ready to print (any report version)."""
    report = current_report(report)
    trades = report["trade_log"]
    realized = sum(t["pnl"] for t in trades if t["pnl"] is not None)
    fees = sum(t.get("fee", 0.0) for t in trades)
    metrics = report["metrics"]
    lines = [f"Backtest {report['id']}: {report['strategy']}  {report['start'][:10]} → {report['end'][:10]}"
             f"  (report logs/backtest_{report['id']}.json)", ""]
    lines += _table(_rows(report)) if trades else ["(no trades)"]
    lines += ["", f"{len(trades)} fills, realized P/L {realized:,.2f}, fees {fees:,.2f}, "
                  f"initial capital {report['initial_capital']:,.2f}, final value "
                  f"{_number(report['final_value'])}"]
    lines.append("  ".join(f"{name} {_metric(name, metrics.get(name))}" for name in HEADLINE))
    if report.get("open_positions"):
        lines.append("open at the end: " + ", ".join(
            f"{p['side']} {p['quantity']:g} {p['asset']} @ {p['avg_entry_price']:,.2f}"
            for p in report["open_positions"]))
    return "\n".join(lines)
