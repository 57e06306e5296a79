"""For backtesters: record fills and equity as the run goes, publish the result at the end.

    recorder = BacktestRecorder("sma_cross", {"fast": 10, "slow": 50}, initial_capital=10_000)
    recorder.fill(ts, "BTC", "BUY", 42_000.0, 0.2, fee=8.4, reasoning="fast SMA crossed up", confidence=70)
    recorder.mark(ts, portfolio_value, benchmark=btc_price)
    ...
    await recorder.publish()            # to the running hub (or HUB_NATS_URL)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from bus.publish import HubPublisher
from core.events import BacktestCompleted, EquityPoint, Fill
from core.settings import Settings


class BacktestRecorder:
    """Collects one backtest's fills and equity points; event() or publish() when it is done."""

    def __init__(self, strategy: str, parameters: dict[str, Any], initial_capital: float,
                 *, benchmark: str = "BTC", event_id: str | None = None) -> None:
        self.strategy = strategy
        self.parameters = parameters
        self.initial_capital = initial_capital
        self.benchmark = benchmark
        self.event_id = event_id or f"bt-{strategy}-{uuid.uuid4()}"
        self.fills: list[Fill] = []
        self.curve: list[EquityPoint] = []

    def fill(self, timestamp: datetime, asset: str, action: str, price: float, quantity: float,
             *, fee: float = 0.0, reasoning: str = "", confidence: float | None = None) -> None:
        """Record one entry or exit."""
        self.fills.append(Fill(timestamp=timestamp, asset=asset, action=action, price=price,
                               quantity=quantity, fee=fee, reasoning=reasoning, confidence=confidence))

    def mark(self, timestamp: datetime, value: float, benchmark: float | None = None) -> None:
        """Record the portfolio's value (and the benchmark's price) at TIMESTAMP."""
        self.curve.append(EquityPoint(timestamp=timestamp, value=value, benchmark=benchmark))

    def event(self, **extra: Any) -> BacktestCompleted:
        """The BacktestCompleted event; EXTRA may add periods_per_year, risk_free_rate, metrics…"""
        if not self.curve:
            raise ValueError("mark() the equity at least once before publishing")
        return BacktestCompleted(
            event_id=self.event_id, strategy=self.strategy, parameters=self.parameters,
            start=self.curve[0].timestamp, end=self.curve[-1].timestamp,
            initial_capital=self.initial_capital, benchmark=self.benchmark,
            trades=self.fills, equity_curve=self.curve, **extra,
        )

    async def publish(self, settings: Settings | None = None, **extra: Any) -> BacktestCompleted:
        """Publish the event to the hub and wait until its stream has stored it."""
        event = self.event(**extra)
        async with await HubPublisher.connect(settings, "backtester") as publisher:
            await publisher.publish(event)
        return event
