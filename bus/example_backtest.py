"""An example backtester wired to the hub: an SMA crossover on a synthetic BTC price path.

    python -m bus.example_backtest [--days 365] [--seed 7]

It stands for your own backtester: run the strategy, record fills and equity with
BacktestRecorder, publish at the end. The hub computes the metrics and writes the report;
then `python main.py view-trades` shows it.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timedelta, timezone

import numpy as np

from bus.backtest_recorder import BacktestRecorder


def synthetic_prices(days: int, seed: int) -> np.ndarray:
    """Hourly BTC-like prices: a geometric random walk with some drift."""
    steps = np.random.default_rng(seed).normal(0.00005, 0.006, days * 24)
    return 42_000.0 * np.exp(np.cumsum(steps))


def run(days: int, seed: int, fast: int = 24, slow: int = 24 * 7) -> BacktestRecorder:
    """Long BTC while the fast SMA is above the slow one; all-in, 0.1% fee per fill."""
    prices = synthetic_prices(days, seed)
    recorder = BacktestRecorder("sma_cross", {"fast": fast, "slow": slow}, initial_capital=10_000.0)
    cash, held = 10_000.0, 0.0
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for hour, price in enumerate(prices):
        now = start + timedelta(hours=hour)
        if hour >= slow:
            fast_sma, slow_sma = prices[hour - fast:hour].mean(), prices[hour - slow:hour].mean()
            spread = (fast_sma / slow_sma - 1) * 100
            if fast_sma > slow_sma and held == 0:
                held = cash * 0.999 / price
                recorder.fill(now, "BTC", "BUY", price, held, fee=cash * 0.001,
                              reasoning=f"fast SMA {fast_sma:,.0f} crossed above slow {slow_sma:,.0f}",
                              confidence=min(100, 50 + abs(spread) * 20))
                cash = 0.0
            elif fast_sma < slow_sma and held > 0:
                cash = held * price * 0.999
                recorder.fill(now, "BTC", "SELL", price, held, fee=held * price * 0.001,
                              reasoning=f"fast SMA {fast_sma:,.0f} fell below slow {slow_sma:,.0f}",
                              confidence=min(100, 50 + abs(spread) * 20))
                held = 0.0
        recorder.mark(now, cash + held * price, benchmark=float(price))
    return recorder


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--days", type=int, default=365)
    cli.add_argument("--seed", type=int, default=7)
    args = cli.parse_args()
    event = asyncio.run(run(args.days, args.seed).publish(periods_per_year=24 * 365))
    print(f"published {event.event_id}: {len(event.trades)} fills, {len(event.equity_curve)} points")


if __name__ == "__main__":
    main()
