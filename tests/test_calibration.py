"""Calibration: does confidence predict outcome? Bins, Spearman, Brier and the verdict."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from core.calibration import (
    MAX_BINS, MIN_BINS, MIN_DECISIONS, Calibration, _p_text, _rho_text, calibrate, spearman_test,
)
from core.errors import BadRequest

approx = pytest.approx
NUMBERS = r"ρ = −?\d\.\d\d, p (< 0\.001|= [0-9.]+), n = \d+"


def _decisions(seed: int, size: int, p_win: str) -> list[tuple[float, float]]:
    """Confidence uniform on 0..100; the win probability rises, falls, or ignores it."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0, 100, size)
    chance = {"rising": confidence / 100, "falling": 1 - confidence / 100,
              "flat": np.full(size, 0.5)}[p_win]
    won = rng.random(size) < chance
    size_of_move = rng.uniform(0.5, 2.0, size)
    return list(zip(confidence.tolist(), np.where(won, size_of_move, -size_of_move).tolist()))


def test_confidence_that_predicts_wins_is_called_so() -> None:
    result = calibrate(_decisions(seed=1, size=300, p_win="rising"), pending=7)
    assert result.spearman.rho is not None and result.spearman.rho > 0
    assert result.spearman.p_value is not None and result.spearman.p_value < 0.01
    assert result.verdict.startswith("higher confidence wins more often: ")
    assert re.fullmatch(r"higher confidence wins more often: " + NUMBERS, result.verdict)
    assert "n = 300" in result.verdict
    assert (result.n, result.pending) == (300, 7)
    assert result.bins[-1].win_rate is not None and result.bins[0].win_rate is not None
    assert result.bins[-1].win_rate > result.bins[0].win_rate


def test_independent_confidence_gives_no_evidence() -> None:
    result = calibrate(_decisions(seed=2, size=300, p_win="flat"))
    assert result.spearman.p_value is not None and result.spearman.p_value >= 0.05
    assert re.fullmatch(r"no evidence that confidence predicts outcome: " + NUMBERS,
                        result.verdict)


def test_inverse_confidence_does_worse_with_a_unicode_minus() -> None:
    result = calibrate(_decisions(seed=3, size=300, p_win="falling"))
    assert result.spearman.rho is not None and result.spearman.rho < 0
    assert result.verdict.startswith("higher confidence does worse: ρ = −0.")
    assert re.fullmatch(r"higher confidence does worse: " + NUMBERS, result.verdict)
    assert "-" not in result.verdict  # one minus sign throughout: the Unicode one


@pytest.mark.parametrize("size", [0, 1, 5])
def test_tiny_samples_give_nulls_with_reasons(size: int) -> None:
    result = calibrate([(10.0 * i, float(i % 2)) for i in range(size)])
    assert result.n == size
    assert (result.spearman.rho, result.spearman.p_value) == (None, None)
    assert result.spearman.reason == f"fewer than {MIN_DECISIONS} closed decisions ({size})"
    assert result.verdict == (f"too few closed decisions to judge "
                              f"(n = {size}; at least {MIN_DECISIONS} needed)")
    assert len(result.bins) == 10 and sum(b.n for b in result.bins) == size
    if size == 0:
        assert result.brier.score is None and result.brier.reason == "no closed decisions"
        assert all(b.win_rate is None and b.mean_pnl is None for b in result.bins)
    else:
        assert result.brier.score is not None and result.brier.reason is None


def test_constant_confidence_cannot_predict() -> None:
    result = calibrate([(70.0, float(i - 15)) for i in range(30)])
    assert (result.spearman.rho, result.spearman.p_value) == (None, None)
    assert result.spearman.reason == "confidence never varies"
    assert result.verdict == "confidence never varies, so it cannot predict anything (n = 30)"


def test_constant_pnl_has_nothing_to_predict() -> None:
    result = calibrate([(float(i), 0.0) for i in range(20)])
    assert result.spearman.reason == "realized PnL never varies"
    assert result.verdict == "outcomes never vary, so confidence cannot predict them (n = 20)"
    assert result.brier.score == approx(np.mean((np.arange(20) / 100) ** 2))


def test_bins_and_brier_by_hand() -> None:
    decisions = [(0.0, 10.0), (10.0, -5.0), (25.0, 3.0), (49.9, 0.0),  # 0 PnL is not a win
                 (50.0, -2.0), (75.0, 1.0), (100.0, 8.0)]
    result = calibrate(decisions, bins=4)
    rows = [(b.low, b.high, b.n, b.wins) for b in result.bins]
    assert rows == [(0.0, 25.0, 2, 1),     # 10 and -5
                    (25.0, 50.0, 2, 1),    # 3 and 0; 25 opens its own bin
                    (50.0, 75.0, 1, 0),    # -2
                    (75.0, 100.0, 2, 2)]   # 1 and 8; 100 closes the last bin
    assert [b.win_rate for b in result.bins] == [0.5, 0.5, 0.0, 1.0]
    assert [b.mean_pnl for b in result.bins] == approx([2.5, 1.5, -2.0, 4.5])
    squared_errors = [(0 - 1) ** 2, 0.1 ** 2, (0.25 - 1) ** 2, 0.499 ** 2, 0.5 ** 2,
                      (0.75 - 1) ** 2, (1 - 1) ** 2]
    assert result.brier.score == approx(sum(squared_errors) / 7)
    assert result.brier.score == approx(2.134001 / 7)


def test_empty_bins_are_listed_with_null_rates() -> None:
    result = calibrate([(5.0, 1.0), (95.0, -1.0)], bins=5)
    assert [b.n for b in result.bins] == [1, 0, 0, 0, 1]
    middle = result.bins[2]
    assert (middle.wins, middle.win_rate, middle.mean_pnl) == (0, None, None)


@pytest.mark.parametrize("bins", range(MIN_BINS, MAX_BINS + 1))
def test_zero_falls_in_the_first_bin_and_100_in_the_last(bins: int) -> None:
    result = calibrate([(0.0, 1.0), (100.0, -1.0)], bins=bins)
    assert len(result.bins) == bins
    assert (result.bins[0].n, result.bins[-1].n) == (1, 1)
    assert (result.bins[0].low, result.bins[-1].high) == (0.0, 100.0)
    assert all(a.high == b.low for a, b in zip(result.bins, result.bins[1:]))


def test_spearman_by_hand_on_five_points() -> None:
    # Ranks of PnL against confidence 1..5: 1 3 2 5 4, so d = 0 1 -1 1 -1 and sum d^2 = 4:
    # rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8. The p-value is the t-test's with n - 2 = 3
    # degrees of freedom: t / sqrt(3) = rho / sqrt(1 - rho^2) = 4/3, and for 3 df the
    # two-sided tail is 1 - (2/pi) * (x / (1 + x^2) + atan(x)) at x = 4/3.
    confidence = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    pnl = np.array([-3.0, 2.0, -1.0, 7.0, 4.0])
    result = spearman_test(confidence, pnl, min_decisions=5)
    x = 4 / 3
    assert result.rho == approx(0.8)
    assert result.p_value == approx(1 - 2 / math.pi * (x / (1 + x * x) + math.atan(x)))
    assert result.p_value == approx(0.10409, abs=1e-5)
    assert result.reason is None


def test_spearman_by_hand_through_calibrate() -> None:
    # PnL ranks swap each neighbouring pair: d^2 = 1 ten times, rho = 1 - 60 / 990 = 31/33.
    pnl_ranks = [2, 1, 4, 3, 6, 5, 8, 7, 10, 9]
    result = calibrate([(10.0 * i, float(r) - 5.5) for i, r in enumerate(pnl_ranks)])
    assert result.spearman.rho == approx(31 / 33)
    assert result.verdict.startswith("higher confidence wins more often: ρ = 0.94, p < 0.001")


def test_numbers_in_the_verdict_are_formatted_one_way() -> None:
    assert _p_text(0.003) == "p = 0.003"
    assert _p_text(0.0123) == "p = 0.012"
    assert _p_text(0.6234) == "p = 0.62"
    assert _p_text(0.00099) == "p < 0.001"
    assert _rho_text(0.414) == "ρ = 0.41"
    assert _rho_text(-0.349) == "ρ = −0.35"
    assert _rho_text(-0.001) == "ρ = 0.00"


@pytest.mark.parametrize("decisions", [
    [], [(50.0, 1.0)], [(70.0, float(i)) for i in range(30)], [(float(i), 0.0) for i in range(30)],
    _decisions(seed=4, size=200, p_win="rising"),
])
def test_json_never_holds_nan(decisions: list[tuple[float, float]]) -> None:
    text = calibrate(decisions).model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))
    assert Calibration.model_validate_json(text) == calibrate(decisions)


@pytest.mark.parametrize("decisions, pending, bins", [
    ([], 0, MIN_BINS - 1), ([], 0, MAX_BINS + 1), ([], -1, 10),
    ([(100.5, 1.0)], 0, 10), ([(-1.0, 1.0)], 0, 10), ([(math.nan, 1.0)], 0, 10),
    ([(50.0, math.inf)], 0, 10), ([(50.0, math.nan)], 0, 10),
])
def test_unusable_input_is_a_bad_request(
        decisions: list[tuple[float, float]], pending: int, bins: int) -> None:
    with pytest.raises(BadRequest):
        calibrate(decisions, pending=pending, bins=bins)


def test_every_field_of_the_answer_is_described() -> None:
    schema = Calibration.model_json_schema()
    for name, model in [("Calibration", schema), *schema["$defs"].items()]:
        for field, spec in model["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
