"""Schemas of the REST API: query parameters in, documents out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.events import Action, Asset, Confidence, Name, TradeBody, UtcDatetime

MAX_PAGE = 500
MAX_OFFSET = 1_000_000


class StoredRecord(BaseModel):
    """What the hub adds to a stored event: its database id beside the publisher's event_id."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str


class OutcomeOut(BaseModel):
    """What a trade realized (core/outcomes.py defines it); nulls while it is not known."""

    status: Literal["open", "partial", "closed", "exit"] | None = Field(
        None, description="exit; or as an entry: open, partial, closed; null: not paired yet")
    realized_pnl: float | None = Field(None, description="an exit's, or a closed entry's, net of fees")


class TradeOut(TradeBody, StoredRecord):
    """A stored trade, live or backtested; timestamps are UTC."""

    outcome: OutcomeOut = Field(default_factory=OutcomeOut)


class TradeQuery(BaseModel):
    """Filters and paging of GET /api/trades; newest first."""

    model_config = ConfigDict(extra="forbid")

    asset: Asset | None = None
    action: Action | None = None
    source: Name | None = None
    strategy: Name | None = None
    since: UtcDatetime | None = Field(None, description="inclusive")
    until: UtcDatetime | None = Field(None, description="exclusive")
    after_id: int | None = Field(
        None, ge=0, le=2**63 - 1, description="only trades stored after this id: catching up")
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the last page")

    @model_validator(mode="after")
    def _one_way_of_paging(self) -> TradeQuery:
        if self.cursor and self.offset:
            raise ValueError("use either cursor or offset, not both")
        return self


class TradePage(BaseModel):
    """One page of trades, with the cursor of the next page (null on the last)."""

    trades: list[TradeOut]
    next_cursor: str | None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a machine-readable code, a sentence, optional details."""

    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class ComponentHealth(BaseModel):
    """State of one dependency of the hub."""

    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)


class Health(BaseModel):
    """GET /api/health: overall status and each component's."""

    status: Literal["ok", "degraded"]
    nats: ComponentHealth
    database: ComponentHealth
    consumers: dict[str, dict[str, Any]]
    websocket: dict[str, int]
    embedder: ComponentHealth = Field(description="detail.ready: the model is loaded (search is warm)")
    outcomes: ComponentHealth = Field(description="the outcome worker: holding the lease, checkpoint")
    reasoning: ComponentHealth = Field(
        description="decision memory: trades_behind and seconds_behind (not yet searchable by "
                    "meaning), texts this instance embedded")


class HubPing(BaseModel):
    """A hub.ping request: is any hub instance listening on this NATS?"""

    model_config = ConfigDict(extra="forbid")


class HubPong(BaseModel):
    """The answer of the instance that heard a ping."""

    pid: int
    http_url: str | None


class WsSubscribe(BaseModel):
    """What a WebSocket client wants; a missing or null list means every asset, and every kind
    but outcomes, which come only to clients that name them (one more event per paired trade)."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Literal["trades", "backtests", "knowledge", "outcomes"]] | None = None
    assets: list[Asset] | None = Field(None, description="applies to events that have an asset")


class BacktestTradeOut(TradeOut):
    """A backtest's trade: the live Trade schema plus its fee and realized PnL (exits only)."""

    confidence: Confidence | None = None  # type: ignore[assignment]  # a backtester may give none
    fee: float
    pnl: float | None


class BacktestSummary(BaseModel):
    """One line of GET /api/backtests."""

    id: int
    event_id: str
    strategy: str
    start: UtcDatetime
    end: UtcDatetime
    initial_capital: float
    final_value: float | None
    total_return: float | None
    sharpe: float | None
    max_drawdown: float | None
    trades: int
    created_at: UtcDatetime


BacktestSort = Literal["created", "sharpe", "total_return", "max_drawdown"]


class BacktestQuery(BaseModel):
    """Filters, order and paging of GET /api/backtests."""

    model_config = ConfigDict(extra="forbid")

    strategy: Name | None = None
    asset: Asset | None = Field(None, description="backtests that traded this asset")
    since: UtcDatetime | None = Field(None, description="backtests that end at or after this")
    until: UtcDatetime | None = Field(None, description="backtests that start before this")
    sort: BacktestSort = "created"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class BacktestPage(BaseModel):
    """A page of backtest summaries and how many match in all."""

    backtests: list[BacktestSummary]
    total: int


class CurveQuery(BaseModel):
    """?points=N: downsample the equity curve to about N points, keeping extremes."""

    model_config = ConfigDict(extra="forbid")

    points: int | None = Field(None, ge=2, le=10_000_000)


class EquityCurveOut(BaseModel):
    """The equity curve against the benchmark, as columns (what charting libraries take)."""

    timestamp: list[UtcDatetime]
    value: list[float]
    benchmark: list[float | None]
    points: int = Field(description="points in the stored curve")
    downsampled: bool


class BacktestDetail(BacktestSummary):
    """GET /api/backtests/{id}: everything, with the conventions the metrics follow."""

    parameters: dict[str, Any]
    benchmark: str
    metrics: dict[str, float | int | None]
    metric_reasons: dict[str, str]
    max_drawdown_detail: dict[str, Any]
    conventions: dict[str, Any]
    runner: dict[str, Any] = Field(description="final_value and metrics the runner sent, if any")
    open_positions: list[dict[str, Any]]
    equity_curve: EquityCurveOut
    trade_log: list[BacktestTradeOut]
