"""Does an agent's 0-100 confidence carry information about its outcomes?

A decision is a closed entry: (confidence 0..100, realized PnL net of fees); it WINS when its
PnL > 0. Spearman's rho ranks confidence against realized PnL (scipy.stats.spearmanr, the
t-approximation p-value), the Brier score reads confidence/100 as P(win), and equal-width bins
over [0, 100] show the win rate per confidence band. Undefined statistics are null with a
reason, never NaN, so the answer is valid JSON whatever the sample.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from scipy import stats

from core.errors import BadRequest

Array = NDArray[np.float64]

# Below 10 pairs the t-approximation behind spearmanr's p-value is poor (the exact null
# distribution of rho is lumpy) and one lucky trade moves rho by a lot: no verdict is honest.
MIN_DECISIONS = 10
ALPHA = 0.05  # the significance level the verdict uses
DEFAULT_BINS, MIN_BINS, MAX_BINS = 10, 2, 20
MINUS = "\u2212"  # the verdict writes negative rho with the Unicode minus sign, always

# Measured: calibrate() on 10,000 random decisions (a list of tuples) costs ~10 ms of CPU;
# wall time min 10 ms, median 21-28 ms, p95 46 ms on a 2-core machine at load average 7.
# About half is spearmanr (its two rankings), a third the list -> array conversion. Budget: 50 ms.


class CalibrationBin(BaseModel):
    """Decisions whose confidence falls in [low, high); the last bin also holds 100."""

    low: float = Field(description="lowest confidence in the bin (inclusive)")
    high: float = Field(description="upper confidence edge (exclusive, except 100 in the last bin)")
    n: int = Field(ge=0, description="closed decisions in the bin")
    wins: int = Field(ge=0, description="decisions in the bin with realized PnL > 0")
    win_rate: float | None = Field(ge=0, le=1, description="wins / n; null when the bin is empty")
    mean_pnl: float | None = Field(description="mean realized PnL; null when the bin is empty")


class SpearmanTest(BaseModel):
    """Spearman's rank correlation of confidence against realized PnL, with its p-value."""

    rho: float | None = Field(ge=-1, le=1, description="Spearman's rho; null when undefined")
    p_value: float | None = Field(
        ge=0, le=1, description="two-sided p-value of rho = 0; null when rho is")
    reason: str | None = Field(description="why rho is null; null when it is not")


class BrierScore(BaseModel):
    """Mean squared error of confidence/100 as the probability of a win (0 best, 1 worst)."""

    score: float | None = Field(ge=0, le=1, description="mean of (confidence/100 - win)^2")
    reason: str | None = Field(description="why score is null; null when it is not")


class Calibration(BaseModel):
    """Whether confidence predicts outcome: per-bin win rates, Spearman's rho, Brier, a verdict."""

    n: int = Field(ge=0, description="closed decisions (entries with a known realized PnL)")
    pending: int = Field(ge=0, description="entries still open, not yet judged")
    bins: list[CalibrationBin] = Field(description="equal-width confidence bins over [0, 100]")
    spearman: SpearmanTest = Field(description="rank correlation of confidence and realized PnL")
    brier: BrierScore = Field(description="Brier score of confidence/100 as P(win)")
    verdict: str = Field(description="the answer in one sentence, with rho, p and n")


def calibrate(decisions: Sequence[tuple[float, float]], pending: int = 0,
              bins: int = DEFAULT_BINS) -> Calibration:
    """Judge whether confidence predicts outcome over closed (confidence, realized_pnl) pairs."""
    if not MIN_BINS <= bins <= MAX_BINS:
        raise BadRequest(f"bins must be between {MIN_BINS} and {MAX_BINS}, got {bins}")
    if pending < 0:
        raise BadRequest(f"pending must be 0 or more, got {pending}")
    confidence, pnl = _columns(decisions)
    spearman = spearman_test(confidence, pnl)
    return Calibration(
        n=int(confidence.size), pending=pending, bins=_bins(confidence, pnl, bins),
        spearman=spearman, brier=_brier(confidence, pnl),
        verdict=_verdict(spearman, confidence, pnl))


def spearman_test(confidence: Array, pnl: Array,
                  min_decisions: int = MIN_DECISIONS) -> SpearmanTest:
    """Spearman's rho and p-value, or nulls with the reason spearmanr would have given NaN."""
    reason = _undefined(confidence, pnl, max(min_decisions, 3))
    if reason:
        return SpearmanTest(rho=None, p_value=None, reason=reason)
    result = stats.spearmanr(confidence, pnl)
    # Clipping only absorbs float noise at perfect (anti)correlation, e.g. rho = 1.0000000002.
    rho = float(np.clip(result.statistic, -1.0, 1.0))
    return SpearmanTest(rho=rho, p_value=float(np.clip(result.pvalue, 0.0, 1.0)), reason=None)


def _columns(decisions: Sequence[tuple[float, float]]) -> tuple[Array, Array]:
    """Confidence and PnL as float64 columns, after checking they are usable numbers."""
    table = np.asarray(decisions, dtype=np.float64).reshape(-1, 2)
    confidence, pnl = table[:, 0], table[:, 1]
    if not np.all((confidence >= 0) & (confidence <= 100)):  # also rejects NaN
        raise BadRequest("every confidence must be a number from 0 to 100")
    if not np.all(np.isfinite(pnl)):
        raise BadRequest("every realized PnL must be a finite number")
    return confidence, pnl


def _undefined(confidence: Array, pnl: Array, min_decisions: int) -> str | None:
    """Why rho cannot be computed (too few, or a constant column), or None when it can."""
    if confidence.size < min_decisions:
        return f"fewer than {min_decisions} closed decisions ({confidence.size})"
    if np.ptp(confidence) == 0:
        return "confidence never varies"
    if np.ptp(pnl) == 0:
        return "realized PnL never varies"
    return None


def _bins(confidence: Array, pnl: Array, count: int) -> list[CalibrationBin]:
    """Per-bin counts, wins and mean PnL, with every bin listed even when empty."""
    edges = np.arange(count + 1) * 100.0 / count  # the last edge is exactly 100
    # Searching the same edges we report keeps a confidence equal to `low` inside its bin.
    index = np.minimum(np.searchsorted(edges, confidence, side="right") - 1, count - 1)
    sizes = np.bincount(index, minlength=count)
    wins = np.bincount(index, weights=(pnl > 0).astype(np.float64), minlength=count)
    pnl_sums = np.bincount(index, weights=pnl, minlength=count)
    return [CalibrationBin(
        low=float(edges[i]), high=float(edges[i + 1]), n=int(sizes[i]), wins=int(wins[i]),
        win_rate=float(wins[i] / sizes[i]) if sizes[i] else None,
        mean_pnl=float(pnl_sums[i] / sizes[i]) if sizes[i] else None,
    ) for i in range(count)]


def _brier(confidence: Array, pnl: Array) -> BrierScore:
    """Brier score of confidence/100 against win (1) or not (0)."""
    if confidence.size == 0:
        return BrierScore(score=None, reason="no closed decisions")
    errors = confidence / 100.0 - (pnl > 0)
    return BrierScore(score=float(np.mean(errors * errors)), reason=None)


def _verdict(spearman: SpearmanTest, confidence: Array, pnl: Array) -> str:
    """One sentence a person can act on, with the numbers it rests on."""
    n = confidence.size
    if n < MIN_DECISIONS:
        return f"too few closed decisions to judge (n = {n}; at least {MIN_DECISIONS} needed)"
    if spearman.rho is None or spearman.p_value is None:
        if np.ptp(confidence) == 0:
            return f"confidence never varies, so it cannot predict anything (n = {n})"
        return f"outcomes never vary, so confidence cannot predict them (n = {n})"
    numbers = f"{_rho_text(spearman.rho)}, {_p_text(spearman.p_value)}, n = {n}"
    if spearman.p_value < ALPHA and spearman.rho > 0:
        return f"higher confidence wins more often: {numbers}"
    if spearman.p_value < ALPHA and spearman.rho < 0:
        return f"higher confidence does worse: {numbers}"
    return f"no evidence that confidence predicts outcome: {numbers}"


def _rho_text(rho: float) -> str:
    """rho with 2 decimals and a Unicode minus: 'ρ = −0.35'."""
    shown = round(rho, 2) or 0.0  # -0.001 reads "0.00", not "−0.00"
    return "\u03c1 = " + f"{shown:.2f}".replace("-", MINUS)


def _p_text(p_value: float) -> str:
    """p with 2 significant digits, or 'p < 0.001' when smaller."""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.2g}"
