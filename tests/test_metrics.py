"""Performance metrics against hand arithmetic, degenerate inputs and JSON safety."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import pytest

from core.metrics import (
    METRIC_NAMES, CurveInput, MetricsResult, compute_metrics, infer_periods_per_year,
)
from core.pairing import Fill, PairingResult, pair_fifo

approx = pytest.approx
DAY = 86400.0
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
NO_TRADES = pair_fifo([])
# Returns +10%, -10%, +20%, -5%.
VALUES = [100.0, 110.0, 99.0, 118.8, 112.86]
# Returns +5%, -10%, +10%, -5%.
BENCH = [100.0, 105.0, 94.5, 103.95, 98.7525]


def curve(
    values: Sequence[float], bench: Sequence[float | None] | None = None, step: float = DAY
) -> CurveInput:
    """A curve starting 2024-01-01 with one point per step."""
    t = T0 + step * np.arange(len(values), dtype=np.float64)
    b = None if bench is None else np.array(bench, dtype=np.float64)  # None becomes NaN
    return CurveInput(t, np.array(values, dtype=np.float64), b)


def run(c: CurveInput, pairing: PairingResult = NO_TRADES, **kwargs: float) -> MetricsResult:
    result = compute_metrics(c, pairing, **kwargs)
    assert set(result.metrics) == set(METRIC_NAMES)
    json.dumps(result.as_dict(), allow_nan=False)
    return result


# Hand arithmetic for VALUES: mean of returns and sample standard deviation (ddof=1).
MEAN = (0.10 - 0.10 + 0.20 - 0.05) / 4  # 0.0375
STD = math.sqrt((0.0625**2 + 0.1375**2 + 0.1625**2 + 0.0875**2) / 3)  # deviations from 0.0375


def test_curve_metrics_match_hand_arithmetic() -> None:
    m = run(curve(VALUES), periods_per_year=4).metrics
    assert m["total_return"] == approx(112.86 / 100 - 1)
    assert m["cagr"] == approx(1.1286 ** (365.25 / 4) - 1)  # 4 days = 4/365.25 years
    assert m["volatility"] == approx(STD * 2)  # sqrt(4)
    assert m["sharpe"] == approx(0.0375 / STD * 2)
    # Downside: min(r, 0) = 0, -0.10, 0, -0.05 -> sqrt((0.01 + 0.0025) / 4)
    assert m["sortino"] == approx(0.0375 / math.sqrt(0.0125 / 4) * 2)
    assert m["max_drawdown"] == approx(99 / 110 - 1)
    assert m["calmar"] == approx((1.1286 ** (365.25 / 4) - 1) / 0.1)


def test_risk_free_rate_is_compounded_down_to_the_period() -> None:
    # (1 + 0.04060401) ** (1/4) - 1 = 0.01 per period; excess = 0.09, -0.11, 0.19, -0.06.
    result = run(curve(VALUES, BENCH), periods_per_year=4, risk_free_rate=1.01**4 - 1)
    m = result.metrics
    assert m["volatility"] == approx(STD * 2)
    assert m["sharpe"] == approx((0.0375 - 0.01) / STD * 2)
    assert m["sortino"] == approx(0.0275 / math.sqrt((0.11**2 + 0.06**2) / 4) * 2)
    # mean((r - 0.01) - 1.5 * (rb - 0.01)) = 0.0275 - 1.5 * (0 - 0.01) = 0.0425
    assert m["alpha"] == approx(1.0425**4 - 1)
    assert result.conventions["risk_free_rate"] == approx(0.04060401)


def test_drawdown_detail_recovered() -> None:
    result = run(curve(VALUES))
    assert result.max_drawdown_detail == {
        "value": approx(-0.1), "peak": "2024-01-02T00:00:00Z", "trough": "2024-01-03T00:00:00Z",
        "duration": 2 * DAY, "recovery": "2024-01-04T00:00:00Z",
    }


def test_drawdown_detail_not_recovered_uses_last_peak_and_runs_to_the_end() -> None:
    result = run(curve([100.0, 120.0, 120.0, 90.0, 100.0]))
    assert result.metrics["max_drawdown"] == approx(90 / 120 - 1)
    assert result.max_drawdown_detail == {
        "value": approx(-0.25), "peak": "2024-01-03T00:00:00Z", "trough": "2024-01-04T00:00:00Z",
        "duration": 2 * DAY, "recovery": None,
    }


def test_benchmark_metrics_match_hand_arithmetic() -> None:
    m = run(curve(VALUES, BENCH), periods_per_year=4).metrics
    assert m["benchmark_return"] == approx(98.7525 / 100 - 1)
    assert m["excess_return"] == approx(0.1286 - (-0.012475))
    # Benchmark mean is 0: cov = sum(dev_s * rb) / 3, var = sum(rb^2) / 3.
    cov = (0.0625 * 0.05 + 0.1375 * 0.10 + 0.1625 * 0.10 + 0.0875 * 0.05) / 3
    var_b = (0.05**2 + 0.10**2 + 0.10**2 + 0.05**2) / 3
    assert m["beta"] == approx(cov / var_b) == approx(1.5)
    assert m["correlation"] == approx(cov / (STD * math.sqrt(var_b)))
    assert m["alpha"] == approx((1 + 0.0375 - 1.5 * 0.0) ** 4 - 1)
    # Active returns 0.05, 0, 0.10, 0: mean 0.0375, deviations 0.0125, -0.0375, 0.0625, -0.0375.
    te = math.sqrt((0.0125**2 + 0.0375**2 + 0.0625**2 + 0.0375**2) / 3)
    assert m["tracking_error"] == approx(te * 2)
    assert m["information_ratio"] == approx(0.0375 / te * 2)


@pytest.mark.parametrize("gap", [None, 0.0, float("inf")])
def test_benchmark_gaps_use_only_periods_with_two_valid_values(gap: float | None) -> None:
    # Strategy returns 0.10, -0.10, 0.20, -0.05, 0.10; the benchmark is usable in periods 0, 3, 4.
    values = [*VALUES, 112.86 * 1.1]
    result = run(curve(values, [100.0, 110.0, gap, 120.0, 108.0, 129.6]), periods_per_year=4)
    m = result.metrics
    assert m["benchmark_return"] == approx(1.1 * 0.9 * 1.2 - 1)
    assert m["excess_return"] == approx((124.146 / 100 - 1) - 0.188)
    # Usable strategy returns 0.10, -0.05, 0.10 (mean 0.05);
    # benchmark returns 0.10, -0.10, 0.20 (mean 1/15).
    cov = (0.05 * (1 / 30) + (-0.10) * (-1 / 6) + 0.05 * (2 / 15)) / 2
    var_b = ((1 / 30) ** 2 + (1 / 6) ** 2 + (2 / 15) ** 2) / 2
    var_s = (0.05**2 + 0.10**2 + 0.05**2) / 2
    assert m["beta"] == approx(cov / var_b)
    assert m["correlation"] == approx(cov / math.sqrt(var_s * var_b))
    # Active returns 0, 0.05, -0.10: mean -0.05/3.
    mean_a = -0.05 / 3
    te = math.sqrt(((0 - mean_a) ** 2 + (0.05 - mean_a) ** 2 + (-0.10 - mean_a) ** 2) / 2)
    assert m["tracking_error"] == approx(te * 2)
    assert m["information_ratio"] == approx(mean_a / te * 2)


def round_trip_fills(exits: list[float]) -> list[Fill]:
    """One BUY at 100 and one SELL at each exit price, a day apart, in day pairs."""
    fills = []
    for k, price in enumerate(exits):
        fills += [Fill(T0 + 2 * k * DAY, "BTC", "BUY", 100.0, 1.0),
                  Fill(T0 + (2 * k + 1) * DAY, "BTC", "SELL", price, 1.0)]
    return fills


def test_trade_metrics_match_hand_arithmetic() -> None:
    pairing = pair_fifo(round_trip_fills([110.0, 95.0, 120.0, 100.0, 85.0]))  # +10 -5 +20 0 -15
    m = run(curve([100.0] * 11), pairing).metrics
    assert m["trades"] == 5
    assert m["win_rate"] == approx(2 / 5)  # the break-even trade is neither win nor loss
    assert m["profit_factor"] == approx((10 + 20) / (5 + 15))
    assert m["expectancy"] == approx((10 - 5 + 20 + 0 - 15) / 5)
    assert m["avg_win"] == approx(15.0) and m["avg_loss"] == approx(-10.0)
    assert m["largest_win"] == approx(20.0) and m["largest_loss"] == approx(-15.0)
    assert m["total_fees"] == 0.0
    assert m["exposure"] == approx(5 / 10)  # five one-day holdings over ten days


def test_fees_flow_into_net_pnl_and_total_fees() -> None:
    fills = [Fill(T0, "BTC", "BUY", 100.0, 1.0, fee=1.0),
             Fill(T0 + DAY, "BTC", "SELL", 110.0, 1.0, fee=2.0)]
    m = run(curve([100.0, 107.0]), pair_fifo(fills)).metrics
    assert m["expectancy"] == approx(10 - 3) and m["total_fees"] == approx(3.0)


def test_exposure_clips_to_the_curve_and_counts_open_end() -> None:
    pairing = PairingResult([], [], [], 0.0, [(T0 - DAY, T0 + DAY), (T0 + 3 * DAY, None)])
    assert run(curve(VALUES), pairing).metrics["exposure"] == approx((1 + 1) / 4)


@pytest.mark.parametrize("step, ppy", [(DAY, 365.0), (3600.0, 8760.0), (60.0, 525600.0)])
def test_periods_per_year_inferred_from_spacing(step: float, ppy: float) -> None:
    assert infer_periods_per_year(T0 + step * np.arange(10.0)) == approx(ppy)
    result = run(curve(VALUES, step=step))
    assert result.conventions["periods_per_year"] == approx(ppy)
    assert result.conventions["periods_per_year_source"] == "inferred"
    assert result.metrics["volatility"] == approx(STD * math.sqrt(ppy))


def test_infer_periods_per_year_degenerate() -> None:
    assert infer_periods_per_year(np.array([T0])) is None
    assert infer_periods_per_year(np.array([], dtype=np.float64)) is None
    assert infer_periods_per_year(np.array([T0, T0, T0])) is None


def test_given_periods_per_year_is_reported() -> None:
    conventions = run(curve(VALUES), periods_per_year=252).conventions
    assert conventions["periods_per_year"] == 252.0
    assert conventions["periods_per_year_source"] == "given"
    assert "sharpe=" in str(conventions["definitions"])


@pytest.mark.parametrize("values", [[], [100.0]])
def test_empty_and_one_point_curves_give_none_with_reasons(values: list[float]) -> None:
    result = run(curve(values, [1.0] * len(values)))
    for name in ("total_return", "cagr", "volatility", "sharpe", "max_drawdown", "beta", "alpha"):
        assert result.metrics[name] is None
        assert result.reasons[name] == "fewer than 2 curve points"
    assert result.metrics["trades"] == 0 and result.metrics["exposure"] is None
    assert set(result.max_drawdown_detail.values()) == {None}


def test_flat_curve() -> None:
    result = run(curve([100.0] * 5))
    m, reasons = result.metrics, result.reasons
    for name in ("total_return", "cagr", "volatility", "max_drawdown"):
        assert m[name] == 0.0
    assert m["sharpe"] is None and reasons["sharpe"] == "zero volatility"
    assert m["sortino"] is None and "downside" in reasons["sortino"]
    assert m["calmar"] is None and reasons["calmar"] == "no drawdown"
    assert result.max_drawdown_detail["recovery"] is None


def test_constant_growth_has_zero_volatility_not_a_huge_sharpe() -> None:
    m = run(curve([100.0 * 1.01**k for k in range(50)])).metrics
    assert m["volatility"] == approx(0.0, abs=1e-9)
    assert m["sharpe"] is None and m["sortino"] is None


def test_two_points_have_returns_but_no_ratios() -> None:
    result = run(curve([100.0, 110.0]))
    assert result.metrics["total_return"] == approx(0.1)
    assert result.metrics["volatility"] is None
    assert "fewer than 2 returns" in result.reasons["volatility"]


def test_no_trades() -> None:
    result = run(curve(VALUES))
    assert result.metrics["trades"] == 0
    assert result.metrics["total_fees"] == 0.0 and result.metrics["exposure"] == 0.0
    for name in ("win_rate", "profit_factor", "expectancy", "avg_win", "largest_loss"):
        assert result.metrics[name] is None and result.reasons[name] == "no closed trades"


def test_all_winning_trades_have_no_profit_factor() -> None:
    result = run(curve(VALUES), pair_fifo(round_trip_fills([110.0, 120.0])))
    assert result.metrics["win_rate"] == 1.0
    assert result.metrics["profit_factor"] is None
    assert result.reasons["profit_factor"] == "no losing trades"
    assert result.metrics["avg_loss"] is None and result.metrics["largest_loss"] is None


def test_all_losing_trades_have_zero_profit_factor() -> None:
    result = run(curve(VALUES), pair_fifo(round_trip_fills([90.0, 80.0])))
    assert result.metrics["profit_factor"] == 0.0 and result.metrics["win_rate"] == 0.0
    assert result.metrics["avg_win"] is None and result.reasons["avg_win"] == "no winning trades"


@pytest.mark.parametrize("bench", [None, [0.0] * 5, [None] * 5, [100.0, None, 101.0, 0.0, 102.0]])
def test_unusable_benchmark_gives_none_with_reason(bench: list[float | None] | None) -> None:
    result = run(curve(VALUES, bench))
    for name in ("benchmark_return", "excess_return", "alpha", "beta", "correlation",
                 "information_ratio", "tracking_error"):
        assert result.metrics[name] is None and result.reasons[name]
    assert result.metrics["sharpe"] is not None


def test_constant_benchmark_has_no_beta() -> None:
    m = run(curve(VALUES, [100.0] * 5), periods_per_year=4).metrics
    assert m["benchmark_return"] == 0.0 and m["excess_return"] == approx(0.1286)
    assert m["beta"] is None and m["correlation"] is None and m["alpha"] is None
    assert m["tracking_error"] == approx(STD * 2)


def test_non_positive_equity_and_mismatched_lengths() -> None:
    result = run(curve([100.0, 0.0, 50.0]))
    assert result.metrics["total_return"] is None
    assert result.reasons["max_drawdown"] == "equity values must all be > 0"
    mismatched = CurveInput(np.array([T0, T0 + DAY]), np.array([1.0]), None)
    assert run(mismatched).metrics["sharpe"] is None


def test_identical_timestamps_leave_periods_per_year_unknown() -> None:
    result = run(curve(VALUES, step=0.0))
    assert result.conventions["periods_per_year"] is None
    assert result.metrics["volatility"] is None and result.metrics["cagr"] is None
    assert result.metrics["total_return"] == approx(0.1286)


def test_invalid_risk_free_rate_blocks_only_the_ratios_that_need_it() -> None:
    result = run(curve(VALUES), risk_free_rate=float("nan"))
    assert result.metrics["sharpe"] is None and result.metrics["volatility"] is not None
    assert result.conventions["risk_free_rate"] is None


def test_overflowing_annualization_gives_none_not_infinity() -> None:
    result = run(curve([100.0, 200.0, 150.0, 400.0], [1.0, 1.5, 1.2, 2.0], step=1.0))
    assert result.metrics["cagr"] is None and "overflow" in result.reasons["cagr"]
    assert result.metrics["alpha"] is None


def test_unsorted_points_and_nan_values_are_cleaned() -> None:
    t = np.array([T0 + 2 * DAY, T0, T0 + DAY, T0 + 3 * DAY])
    result = run(CurveInput(t, np.array([99.0, 100.0, 110.0, np.nan]), None))
    assert result.metrics["total_return"] == approx(-0.01)
    assert result.max_drawdown_detail["trough"] == "2024-01-03T00:00:00Z"


def plain(value: object) -> None:
    """Assert a structure holds only JSON-native types and finite floats."""
    if isinstance(value, dict):
        for item in value.values():
            plain(item)
    else:
        assert type(value) in (float, int, str, type(None)), type(value)
        assert not isinstance(value, float) or math.isfinite(value)


@pytest.mark.parametrize("seed", range(40))
def test_results_are_json_safe_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    values = 100 * np.exp(np.cumsum(rng.normal(0, rng.choice([0.0, 0.01, 3.0]), n)))
    bench = rng.choice([np.nan, 0.0, np.inf, -1.0, 50.0, 51.0, 60.0], n)
    t = T0 + np.cumsum(rng.choice([0.0, 1.0, 60.0, DAY], n))
    fills = [Fill(T0 + float(rng.integers(0, 100)) * DAY, str(rng.choice(["A", "B"])),
                  str(rng.choice(["BUY", "SELL"])), float(rng.uniform(1, 10)),
                  float(rng.choice([0.0, 1e-13, 0.5, 2.0])), float(rng.uniform(0, 0.1)))
             for _ in range(int(rng.integers(0, 30)))]
    result = run(CurveInput(t, values, bench), pair_fifo(fills),
                 periods_per_year=float(rng.choice([np.nan, -1.0, 365.0, 0.0])))
    plain(result.as_dict())


@pytest.mark.parametrize("t, values", [
    ([T0, T0 + 1, T0 + 2], [1e-300, 1e300, 1e-300]),
    ([T0, T0 + 1e-9, T0 + 2e-9], [1.0, 1e300, 1e-300]),
    ([-1e18, 0.0, 1e18], [1.0, 2.0, 1.5]),
])
def test_extreme_curves_never_raise_and_stay_json_safe(t: list[float], values: list[float]) -> None:
    c = CurveInput(np.array(t), np.array(values), np.array([1.0, 1e300, 1e-300]))
    plain(run(c, risk_free_rate=0.05).as_dict())


def test_large_backtest_computes() -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    walk = np.exp(np.cumsum(rng.normal(0, 1e-3, (2, n)), axis=1))
    c = CurveInput(T0 + 60.0 * np.arange(n, dtype=np.float64), 1e4 * walk[0], 3e4 * walk[1])
    fills = [Fill(T0 + 600.0 * k, "BTC", "BUY" if k % 3 else "SELL", 3e4, 0.1)
             for k in range(10_000)]
    result = compute_metrics(c, pair_fifo(fills), risk_free_rate=0.04)
    assert result.metrics["sharpe"] is not None and result.metrics["trades"] == 3334
