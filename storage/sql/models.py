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
