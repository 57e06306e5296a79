"""SQLAlchemy tables of the hub."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite has no 64-bit autoincrement type other than INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every dialect and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Trade(Base):
    """A live trade an agent made, with why (reasoning) and how sure it was (confidence)."""

    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_time", "timestamp", "id"),
        Index("ix_trades_asset_time", "asset", "timestamp", "id"),
        Index("ix_trades_strategy_time", "strategy", "timestamp", "id"),
        Index("ix_trades_source_time", "source", "timestamp", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    asset: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(4))
    price: Mapped[float] = mapped_column(Float)
    quantity: Mapped[float] = mapped_column(Float)
    reasoning: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(128))
    strategy: Mapped[str | None] = mapped_column(String(128))
    fee: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")

    def __repr__(self) -> str:
        return (
            f"Trade(id={self.id}, {self.timestamp:%Y-%m-%d %H:%M:%S} {self.action} "
            f"{self.quantity} {self.asset} @ {self.price}, confidence={self.confidence})"
        )


class Backtest(Base):
    """A finished backtest: what ran, its headline metrics as columns, the full set as JSON."""

    __tablename__ = "backtests"
    __table_args__ = (
        Index("ix_backtests_created", "created_at"),
        Index("ix_backtests_sharpe", "sharpe"),
        Index("ix_backtests_strategy", "strategy"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    strategy: Mapped[str] = mapped_column(String(128))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    initial_capital: Mapped[float] = mapped_column(Float)
    final_value: Mapped[float | None] = mapped_column(Float)
    benchmark: Mapped[str] = mapped_column(String(128))
    total_return: Mapped[float | None] = mapped_column(Float)
    cagr: Mapped[float | None] = mapped_column(Float)
    sharpe: Mapped[float | None] = mapped_column(Float)
    sortino: Mapped[float | None] = mapped_column(Float)
    max_drawdown: Mapped[float | None] = mapped_column(Float)
    win_rate: Mapped[float | None] = mapped_column(Float)
    trades: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, doc="metrics, reasons, drawdown detail, conventions")
    runner: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the runner's own final_value and metrics")
    open_positions: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BacktestTrade(Base):
    """One entry or exit of a backtest, with its realized PnL when it closed a position."""

    __tablename__ = "backtest_trades"
    __table_args__ = (Index("ix_backtest_trades_asset", "asset", "backtest_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    backtest_id: Mapped[int] = mapped_column(ForeignKey("backtests.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[str] = mapped_column(String(160), unique=True, doc="<backtest event_id>#<n>")
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    asset: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(4))
    price: Mapped[float] = mapped_column(Float)
    quantity: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float, default=0.0)
    pnl: Mapped[float | None] = mapped_column(Float)
    reasoning: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float | None] = mapped_column(Float)


class BacktestData(Base):
    """What the detail view serves whole: the curve and the trade log, stored ready to send.

    The curve is float64 columns (epoch seconds, value, benchmark; NaN = none); the trade log
    is its API JSON, written once. Rebuilding 10,000 trades per request cost 60 ms.
    """

    __tablename__ = "backtest_data"

    backtest_id: Mapped[int] = mapped_column(
        ForeignKey("backtests.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[int] = mapped_column(Integer)
    curve: Mapped[bytes] = mapped_column(LargeBinary)
    trade_log: Mapped[bytes] = mapped_column(LargeBinary)


class OutcomeGroup(Base):
    """One (source, strategy, asset) as the outcome worker left it: its open lots, the last
    trade applied, and the sums its performance is read from."""

    __tablename__ = "outcome_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400), unique=True, doc="JSON [source, strategy, asset]")
    source: Mapped[str | None] = mapped_column(String(128))
    strategy: Mapped[str | None] = mapped_column(String(128))
    asset: Mapped[str] = mapped_column(String(32))
    last_timestamp: Mapped[float | None] = mapped_column(Float, doc="epoch seconds")
    last_trade_id: Mapped[int | None] = mapped_column(BigInteger)
    lots: Mapped[list[Any]] = mapped_column(JSON, doc="open lots: [origin, qty, price, time, fee]")
    side: Mapped[int] = mapped_column(Integer, default=0, doc="+1 long, -1 short, 0 flat")
    exits: Mapped[int] = mapped_column(Integer, default=0)
    wins: Mapped[int] = mapped_column(Integer, default=0)
    losses: Mapped[int] = mapped_column(Integer, default=0)
    win_total: Mapped[float] = mapped_column(Float, default=0.0)
    loss_total: Mapped[float] = mapped_column(Float, default=0.0)
    largest_win: Mapped[float | None] = mapped_column(Float)
    largest_loss: Mapped[float | None] = mapped_column(Float)
    fees: Mapped[float] = mapped_column(Float, default=0.0)
    # The open lots summed, so that positions are read without decoding every group's lots.
    open_quantity: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    cost_basis: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    opened_at: Mapped[float | None] = mapped_column(Float, doc="the oldest open lot's time, epoch seconds")


class TradeOutcome(Base):
    """What one live trade realized: as an exit, and as an entry on the quantity it opened."""

    __tablename__ = "trade_outcomes"
    __table_args__ = (
        Index("ix_trade_outcomes_group_time", "group_id", "timestamp"),
        # Calibration reads a group's entries from the index alone: its rows lie scattered in
        # the table (trades of many groups interleave), and fetching them cost 5x as much.
        Index("ix_trade_outcomes_group_entries", "group_id", "opened", "confidence", "entry_pnl",
              "remaining", "timestamp"),
    )

    trade_id: Mapped[int] = mapped_column(ForeignKey("trades.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("outcome_groups.id", ondelete="CASCADE"))
    timestamp: Mapped[float] = mapped_column(Float, doc="the trade's, epoch seconds")
    confidence: Mapped[float | None] = mapped_column(Float)
    opened: Mapped[float] = mapped_column(Float)
    remaining: Mapped[float] = mapped_column(Float)
    entry_pnl: Mapped[float] = mapped_column(Float)
    exit_quantity: Mapped[float] = mapped_column(Float)
    exit_pnl: Mapped[float] = mapped_column(Float)


class WorkerLease(Base):
    """Which instance runs a background worker, until when, and how far it has come."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Float, default=0.0, doc="epoch seconds")
    watermark: Mapped[int] = mapped_column(BigInteger, default=0, doc="every id up to it is done")
    generation: Mapped[int] = mapped_column(Integer, default=0, doc="+1 whenever the holder changes")


class ReasoningText(Base):
    """One distinct reasoning text, stored once however many trades gave it."""

    __tablename__ = "reasoning_texts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(32), unique=True, doc="blake2b-128 of the text, hex")
    text: Mapped[str] = mapped_column(Text)


class DecisionText(Base):
    """Which reasoning text a live trade or a backtest's trade gave."""

    __tablename__ = "decision_texts"
    __table_args__ = (Index("ix_decision_texts_text", "text_id", "kind", "trade_id"),)

    kind: Mapped[str] = mapped_column(String(8), primary_key=True, doc="live or backtest")
    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, doc="trades.id or backtest_trades.id")
    text_id: Mapped[int] = mapped_column(ForeignKey("reasoning_texts.id", ondelete="CASCADE"))
