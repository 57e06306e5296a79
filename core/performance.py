"""Questions about live outcomes (performance, positions, PnL over time, calibration), asked
over REST, NATS request/reply and the CLI alike, and the shapes of their answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.calibration import DEFAULT_BINS, MAX_BINS, MIN_BINS, Calibration
from core.events import Asset, Name, UtcDatetime
from core.trade_metrics import PnlSums, pnl_metrics

GROUP_FIELDS = ("source", "strategy", "asset")
GroupField = Literal["source", "strategy", "asset"]


def _split(value: object) -> object:
    # ?group_by=source,strategy on a query string; a list where it came as JSON.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GroupFilter(BaseModel):
    """Which live groups a question is about; unset fields match every group."""

    model_config = ConfigDict(extra="forbid")

    source: Name | None = None
    strategy: Name | None = None
    asset: Asset | None = None


class PerformanceQuery(GroupFilter):
    """GET /api/performance: one row per group of the chosen fields."""

    group_by: Annotated[list[GroupField], BeforeValidator(_split)] = Field(
        default_factory=lambda: ["source", "strategy"],  # type: ignore[arg-type]
        description="comma-separated subset of source,strategy,asset; empty: one row for all")
    since: UtcDatetime | None = Field(None, description="exits at or after this time")
    until: UtcDatetime | None = Field(None, description="exits before this time")


class PerformanceRow(BaseModel):
    """One group's realized performance: the backtests' trade-metric definitions over its exits."""

    source: str | None = None
    strategy: str | None = None
    asset: str | None = None
    exits: int
    realized_pnl: float
    fees: float = Field(description="fees of every trade (entries too)")
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    avg_win: float | None
    avg_loss: float | None
    largest_win: float | None
    largest_loss: float | None
    open_positions: int = Field(description="(source, strategy, asset) books with quantity open")

    @classmethod
    def of(cls, group: dict[str, str | None], sums: PnlSums, fees: float, open_positions: int) -> PerformanceRow:
        """The row of a group from its sums (core.trade_metrics states the definitions)."""
        metrics, _ = pnl_metrics(sums)
        named = {k: metrics[k] for k in ("win_rate", "profit_factor", "expectancy", "avg_win",
                                         "avg_loss", "largest_win", "largest_loss")}
        return cls(**group, exits=sums.trades, realized_pnl=sums.win_total + sums.loss_total,
                   fees=fees, open_positions=open_positions, **named)


class PerformancePage(BaseModel):
    """Every group's row, largest realized PnL first."""

    groups: list[PerformanceRow]


class Position(BaseModel):
    """One group's open lots, as one position."""

    source: str | None
    strategy: str | None
    asset: str
    side: Literal["long", "short"]
    quantity: float
    avg_entry_price: float
    opened_at: UtcDatetime = Field(description="when its oldest open lot was opened")
    cost_basis: float = Field(description="sum of entry price × open quantity")


class PositionsPage(BaseModel):
    """Every open position of the matching groups."""

    positions: list[Position]


class PnlQuery(GroupFilter):
    """GET /api/performance/pnl: cumulative realized PnL per interval."""

    interval: Literal["1h", "1d"] = "1d"


class PnlPoint(BaseModel):
    """The realized PnL summed up to the end of one interval."""

    time: UtcDatetime = Field(description="the interval's start")
    realized_pnl: float = Field(description="in this interval")
    cumulative_pnl: float


class PnlSeries(BaseModel):
    """Cumulative realized PnL, for a chart."""

    interval: str
    points: list[PnlPoint]


class CalibrationQuery(GroupFilter):
    """GET /api/calibration: does confidence predict the outcome of closed entries?"""

    since: UtcDatetime | None = Field(None, description="entries at or after this time")
    until: UtcDatetime | None = Field(None, description="entries before this time")
    bins: int = Field(DEFAULT_BINS, ge=MIN_BINS, le=MAX_BINS)


class BacktestCalibrationQuery(BaseModel):
    """GET /api/backtests/{id}/calibration."""

    model_config = ConfigDict(extra="forbid")

    bins: int = Field(DEFAULT_BINS, ge=MIN_BINS, le=MAX_BINS)


class StrategyQuery(BaseModel):
    """GET /api/strategies/{name}: ?backtest=ID, else the latest backtest of that strategy."""

    model_config = ConfigDict(extra="forbid")

    backtest: int | None = Field(None, ge=1, le=2**63 - 1)


class StrategySide(BaseModel):
    """A strategy's trade metrics and calibration on one side: backtest or live."""

    metrics: dict[str, float | int | None]
    calibration: Calibration


class StrategyComparison(BaseModel):
    """A strategy backtested against live, and live minus backtest for each metric."""

    strategy: str
    backtest_id: int | None
    backtest: StrategySide | None
    live: StrategySide
    differences: dict[str, float | None] = Field(description="live − backtest; null where either is")


Calibration.model_rebuild()
