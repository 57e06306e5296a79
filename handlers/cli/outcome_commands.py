"""`main.py performance` and `main.py calibration`: live outcomes as tables, read from the
database (which any number of readers may share, daemon or not)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from core.calibration import Calibration
from core.performance import CalibrationQuery, PerformancePage, PerformanceQuery
from handlers.events import outcome_questions as answers

Sessions = Any


def _number(value: float | int | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def performance_table(page: PerformancePage, group_by: list[str]) -> Table:
    """One row per group: what it realized and how."""
    table = Table(*group_by, "exits", "realized PnL", "fees", "win rate", "profit factor",
                  "expectancy", "open", title="live performance")
    for row in page.groups:
        groups = [str(getattr(row, name) or "(none)") for name in group_by]
        win_rate = "–" if row.win_rate is None else f"{row.win_rate:.0%}"
        table.add_row(*groups, str(row.exits), _number(row.realized_pnl), _number(row.fees),
                      win_rate, _number(row.profit_factor), _number(row.expectancy),
                      str(row.open_positions))
    return table


def calibration_table(calibration: Calibration) -> Table:
    """Win rate per confidence bin, with the verdict as the caption."""
    table = Table("confidence", "decisions", "wins", "win rate", "mean PnL",
                  title=f"calibration: {calibration.n} closed decisions, {calibration.pending} open",
                  caption=calibration.verdict, caption_justify="left")
    for b in calibration.bins:
        rate = "–" if b.win_rate is None else f"{b.win_rate:.0%}"
        table.add_row(f"{b.low:g}–{b.high:g}", str(b.n), str(b.wins), rate, _number(b.mean_pnl))
    return table


async def performance_command(sessions: Sessions, query: PerformanceQuery) -> None:
    """Print each group's realized performance."""
    page = await answers.answer_performance(sessions, query)
    Console().print(performance_table(page, list(query.group_by)) if page.groups else
                    "no live trades paired yet")


async def calibration_command(sessions: Sessions, query: CalibrationQuery) -> None:
    """Print whether confidence predicts the outcome."""
    Console().print(calibration_table(await answers.answer_calibration(sessions, query)))
