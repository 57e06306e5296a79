"""Decision memory: past trades found by what their reasoning says, with what happened next.

The questions (search, similar, recall) are asked over REST, NATS and the CLI alike; the
answers are trades in the API's schema, each with its outcome and a score, and for similar
and recall a summary of how those decisions turned out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.api import TradeOut
from core.events import Action, Asset, Name, UtcDatetime

MAX_REASONING = 20_000  # characters of a draft reasoning; longer is refused, not cut
MAX_RESULTS = 100
Kind = Literal["live", "backtest"]
OutcomeFilter = Literal["win", "loss", "open"]


class DecisionFilter(BaseModel):
    """Which past decisions a question considers; unset fields match all."""

    model_config = ConfigDict(extra="forbid")

    source: Name | None = None
    strategy: Name | None = None
    asset: Asset | None = None
    action: Action | None = None
    since: UtcDatetime | None = Field(None, description="trades at or after this time")
    until: UtcDatetime | None = Field(None, description="trades before this time")
    outcome: OutcomeFilter | None = Field(
        None, description="win: realized PnL > 0; loss: ≤ 0; open: an entry not yet closed")
    kind: Kind | None = Field(None, description="live trades or backtests' trades; unset: both")


class DecisionSearch(DecisionFilter):
    """GET /api/trades/search: trades whose reasoning matches Q, best first."""

    q: str = Field(min_length=1, max_length=MAX_REASONING, description="what the reasoning says")
    k: int = Field(10, ge=1, le=MAX_RESULTS)


class SimilarQuery(BaseModel):
    """GET /api/trades/{id}/similar: the earlier live trades reasoned most like this one."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(20, ge=1, le=MAX_RESULTS)
    scope: Literal["same_source", "all"] = Field(
        "same_source", description="same_source: the trade's own source's decisions only")


class SimilarRequest(SimilarQuery):
    """The same question over NATS, where the trade id comes with it."""

    trade_id: int = Field(ge=1)


class RecallRequest(BaseModel):
    """POST /api/trades/recall: what happened the last times someone reasoned like this draft."""

    model_config = ConfigDict(extra="forbid")

    reasoning: str = Field(min_length=1, max_length=MAX_REASONING, description="the draft reasoning")
    asset: Asset | None = None
    source: Name | None = None
    strategy: Name | None = None
    k: int = Field(10, ge=1, le=MAX_RESULTS)


class Decision(TradeOut):
    """A past decision found by its reasoning."""

    confidence: float | None = Field(description="0-100; a backtest's trade may have none")  # type: ignore[assignment]
    kind: Kind = "live"
    backtest_id: int | None = Field(None, description="the backtest of a backtest trade")
    score: float = Field(0.0, description="hybrid relevance (reciprocal rank fusion); higher is closer")


class MemorySummary(BaseModel):
    """How a set of past decisions turned out."""

    n: int = Field(description="decisions found")
    closed: int = Field(description="of them, with a realized PnL (exits and closed entries)")
    wins: int = Field(description="closed with PnL > 0")
    win_rate: float | None = Field(description="wins / closed; null when none closed")
    mean_pnl: float | None = Field(description="mean realized PnL of the closed; null when none")


class IndexLag(BaseModel):
    """How far the reasoning index is behind the stored trades."""

    trades_behind: int = Field(
        description="stored trades (live and backtests') whose reasoning is not searchable by meaning yet")
    seconds_behind: float = Field(description="age, by trade time, of the oldest live one; 0 when none")


class DecisionPage(BaseModel):
    """Search results, best first."""

    results: list[Decision]
    index: IndexLag


class SimilarDecisions(BaseModel):
    """Similar past decisions, best first, and how they turned out."""

    results: list[Decision]
    summary: MemorySummary
    index: IndexLag


def summarize(decisions: Sequence[Decision]) -> MemorySummary:
    """N, closed, wins, win rate and mean PnL of DECISIONS."""
    pnls = [d.outcome.realized_pnl for d in decisions if d.outcome.realized_pnl is not None]
    wins = sum(pnl > 0 for pnl in pnls)
    return MemorySummary(n=len(decisions), closed=len(pnls), wins=wins,
                         win_rate=wins / len(pnls) if pnls else None,
                         mean_pnl=sum(pnls) / len(pnls) if pnls else None)
