"""Events on the bus: versioned pydantic models, the wire contract for bots in any language."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from typing import Annotated, Any, Literal, Self, cast

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints,
    field_validator,
)

from core.knowledge import Domain, InlineDocument

MAX_TEXT = 20_000
MAX_NAME = 128


def _utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC: bots rarely agree on zones, the hub stores UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text; refuse it at the edge so one event cannot stall a batch.
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Text = Annotated[str, Field(max_length=MAX_TEXT, strict=True), AfterValidator(_no_nul)]
Name = Annotated[str, Field(max_length=MAX_NAME, strict=True), AfterValidator(_no_nul)]
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=r"^[\x21-\x7e]+$",
        strict=True,
        description="the publisher's unique id (printable ASCII, no spaces); also the Nats-Msg-Id",
    ),
]
Asset = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_upper=True, min_length=1, max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-/:]*$",
    ),
    Field(description="ticker, upper-cased; must equal the last token of the subject"),
]
Action = Annotated[Literal["BUY", "SELL"], BeforeValidator(_upper)]
Price = Annotated[float, Field(gt=0, lt=1e15, allow_inf_nan=False, strict=True)]
Confidence = Annotated[
    float, Field(ge=0, le=100, allow_inf_nan=False, strict=True, description="0 to 100")
]


Amount = Annotated[float, Field(ge=0, lt=1e15, allow_inf_nan=False, strict=True)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Event(BaseModel):
    """Base of every bus event: unknown fields are ignored so publishers can run ahead."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # No private attributes: one costs pydantic a Python call per event, a third of decoding.
    schema_version: Literal[1] = 1
    event_id: EventId

    def missing_time(self) -> bool:
        """Whether the publisher left out a time, which the hub takes from the stream (at())."""
        return False

    def at(self, stored_at: datetime) -> Self:
        """The event with the stream's time filled in where the publisher gave none."""
        return self


class TradeBody(BaseModel):
    """What a trade says: declared once, shared by the event, the stored row and the API."""

    timestamp: UtcDatetime = Field(
        default_factory=_now, description="ISO 8601, naive means UTC; default: when the stream stored it")
    asset: Asset
    action: Action
    price: Price
    quantity: Price
    reasoning: Text = ""
    confidence: Confidence
    source: Name | None = Field(None, description="the bot that traded")
    strategy: Name | None = None
    fee: Amount = Field(0.0, description="what the trade cost, in the quote currency")


class TradeExecuted(TradeBody, Event):
    """A live trade by an agent, with its reasoning and confidence; published on trades.<ASSET>."""

    def missing_time(self) -> bool:
        """True when no timestamp was sent (still true once at() has filled it in)."""
        return "timestamp" not in self.model_fields_set

    def at(self, stored_at: datetime) -> Self:
        """The trade, timed when the stream stored it; its fields set still says none was sent."""
        fields = {**self.__dict__, "timestamp": _utc(stored_at)}
        return cast(Self, self.model_construct(_fields_set=self.model_fields_set, **fields))


# A stored trade's fields beside its id, in column order: the insert, the announcement, the CLI
# and the comparison of a replay with what is stored all read this, so a new field is one line.
TRADE_FIELDS: tuple[str, ...] = ("event_id", *TradeBody.model_fields)


MAX_CURVE_POINTS = 2_000_000
MAX_BACKTEST_TRADES = 500_000


class Fill(BaseModel):
    """One entry or exit of a backtest, with the agent's reasoning and confidence."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: UtcDatetime
    asset: Asset
    action: Action
    price: Price
    quantity: Price
    fee: Amount = 0.0
    reasoning: Text = ""
    confidence: Confidence | None = None


class EquityPoint(BaseModel):
    """Portfolio value at a time, and the benchmark's price then (null where unknown)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: UtcDatetime
    value: Amount
    benchmark: Annotated[float, Field(allow_inf_nan=False, strict=True)] | None = None


class BacktestCompleted(Event):
    """A finished backtest: what ran, its trades and its equity curve against a benchmark."""

    strategy: Name
    parameters: dict[str, Any] = Field(default_factory=dict)
    start: UtcDatetime
    end: UtcDatetime
    initial_capital: Price
    benchmark: Name = "BTC"
    periods_per_year: Annotated[float, Field(gt=0, le=1e8, strict=True)] | None = Field(
        None, description="default: inferred from the curve's spacing"
    )
    risk_free_rate: Annotated[float, Field(gt=-1, lt=10, allow_inf_nan=False, strict=True)] = 0.0
    trades: list[Fill] = Field(default_factory=list, max_length=MAX_BACKTEST_TRADES)
    equity_curve: list[EquityPoint] = Field(default_factory=list, max_length=MAX_CURVE_POINTS)
    final_value: Amount | None = Field(None, description="the runner's own, kept beside ours")
    metrics: dict[str, Any] | None = Field(None, description="the runner's own, kept beside ours")


class IndexRequested(Event):
    """Index the knowledge base: named domains and/or paths, or inline documents; none = all."""

    domains: list[Domain] | None = None
    paths: list[Annotated[str, Field(min_length=1, max_length=300)]] | None = Field(
        None, max_length=1000, description="relative to knowledge/, e.g. technical/rsi.md")
    documents: list[InlineDocument] | None = Field(None, max_length=100)

    @field_validator("paths")
    @classmethod
    def _inside_the_folder(cls, paths: list[str] | None) -> list[str] | None:
        for path in paths or []:
            if path.startswith(("/", "\\")) or ".." in path.replace("\\", "/").split("/"):
                raise ValueError(f"{path!r} is outside the knowledge folder")
        return paths


# Every event model, by the name its JSON Schema is published under.
EVENT_MODELS: dict[str, type[Event]] = {
    "TradeExecuted": TradeExecuted,
    "BacktestCompleted": BacktestCompleted,
    "IndexRequested": IndexRequested,
}


@cache
def event_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every event, by name, for bots in other languages to validate against."""
    return {name: model.model_json_schema() for name, model in EVENT_MODELS.items()}
