"""Outcomes of live decisions: what each trade realized, by the FIFO rules of core.pairing.

Definitions, stated once:
- Trades pair FIFO per (source, strategy, asset) — a group; no source or no strategy is a
  group of its own (null). Within a group, trades are applied in (timestamp, id) order.
- An exit (a trade that closed quantity) has the outcome `exit` and its realized PnL net of
  fees, as a backtest's round trip.
- An entry (a trade that opened quantity) is `open` until some of that quantity is closed,
  `partial` while part of it is, `closed` once all of it is; its realized PnL is the sum of the
  shares the exits took from its lots, known (not null) once it is closed. A fill that closes a
  position and opens the other side is an exit, and its opened part is an entry as well.
- Calibration's decisions are the closed entries: (confidence, realized PnL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

from core.pairing import EPS, Book, Fill, apply_fill, check_fill
from core.trade_metrics import PnlSums

Status = Literal["open", "partial", "closed", "exit"]
Key = tuple[float, int]  # (epoch timestamp, trade id): the order trades are applied in


@dataclass(frozen=True)
class LiveFill:
    """One stored trade as the pairing sees it."""

    trade_id: int
    timestamp: float
    action: str
    price: float
    quantity: float
    fee: float
    confidence: float | None

    @property
    def key(self) -> Key:
        """Where it stands in its group's order."""
        return (self.timestamp, self.trade_id)


@dataclass
class Outcome:
    """What one trade has realized so far, as an exit and as an entry."""

    trade_id: int
    timestamp: float
    confidence: float | None
    opened: float = 0.0  # quantity this trade opened
    remaining: float = 0.0  # of that, still open
    entry_pnl: float = 0.0  # realized by the exits on what it opened, so far
    exit_quantity: float = 0.0  # quantity this trade closed
    exit_pnl: float = 0.0  # net of fees

    @property
    def status(self) -> Status:
        """exit, or as an entry: open, partial or closed."""
        if self.exit_quantity > 0:
            return "exit"
        if self.remaining < EPS:
            return "closed"
        return "open" if self.remaining >= self.opened - EPS else "partial"

    @property
    def realized_pnl(self) -> float | None:
        """An exit's PnL, a closed entry's PnL; None while an entry is (partly) open."""
        if self.status == "exit":
            return self.exit_pnl
        return self.entry_pnl if self.status == "closed" else None


@dataclass
class GroupState:
    """One group between batches: its book, the last trade applied, its exits and fees."""

    book: Book = field(default_factory=Book)
    last_key: Key | None = None
    sums: PnlSums = field(default_factory=PnlSums)
    fees: float = 0.0
    open_entries: dict[int, Outcome] = field(default_factory=dict)  # the lots' origins


def pair_into(state: GroupState, fills: Sequence[LiveFill]) -> list[Outcome]:
    """Apply FILLS, sorted and all after state.last_key, to STATE; returns the outcome of every
    fill and of every earlier entry whose outcome they changed."""
    changed: dict[int, Outcome] = {}
    for live in fills:
        fill = Fill(live.timestamp, "", live.action, live.price, live.quantity, live.fee)
        outcome = Outcome(live.trade_id, live.timestamp, live.confidence)
        trip = apply_fill(state.book, fill, check_fill(fill), origin=live.trade_id)
        if trip is not None:
            outcome.exit_quantity, outcome.exit_pnl = trip.quantity, trip.pnl
            state.sums.add(trip.pnl)
            for share in trip.shares:
                entry = state.open_entries[share.origin]
                entry.entry_pnl += share.pnl
                entry.remaining = max(0.0, entry.remaining - share.quantity)
                changed[entry.trade_id] = entry
                if entry.remaining < EPS:
                    entry.remaining = 0.0
                    del state.open_entries[entry.trade_id]
        opened = live.quantity - (trip.quantity if trip is not None else 0.0)
        if opened >= EPS:
            outcome.opened = outcome.remaining = opened
            state.open_entries[live.trade_id] = outcome
        state.fees += live.fee
        state.last_key = live.key
        changed[live.trade_id] = outcome
    return list(changed.values())


def pair_all(fills: Sequence[LiveFill]) -> tuple[GroupState, list[Outcome]]:
    """One group's trades, in any order, paired from nothing: the reference result."""
    state = GroupState()
    return state, pair_into(state, sorted(fills, key=lambda f: f.key))


def decisions(outcomes: Sequence[Outcome]) -> tuple[list[tuple[float, float]], int]:
    """Calibration's input: (confidence, PnL) of each closed entry that has a confidence, and
    how many entries are still (partly) open."""
    closed = [(o.confidence, o.entry_pnl) for o in outcomes
              if o.opened > 0 and o.remaining < EPS and o.confidence is not None]
    pending = sum(1 for o in outcomes if o.opened > 0 and o.remaining >= EPS)
    return closed, pending


def decisions_by_asset(fills: Sequence[tuple[str, LiveFill]]) -> tuple[list[tuple[float, float]], int]:
    """A backtest's decisions: its (asset, fill)s paired per asset, then as decisions()."""
    by_asset: dict[str, list[LiveFill]] = {}
    for asset, fill in fills:
        by_asset.setdefault(asset, []).append(fill)
    outcomes = [o for group in by_asset.values() for o in pair_all(group)[1]]
    return decisions(outcomes)
