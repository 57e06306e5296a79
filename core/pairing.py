"""FIFO pairing of fills into realized PnL per exit, per asset, for longs and shorts.

Choices, stated once:
- Fills are processed in timestamp order; ties keep their input order (stable sort).
- Each asset has one FIFO queue of lots, all on the same side. A BUY adds to a long (or opens
  one when flat) and covers a short; a SELL adds to a short (or opens one when flat) and
  closes a long. A fill larger than the open position closes it and opens the rest on the
  other side.
- A fill's fee is split pro rata between the quantity it closes and the quantity it opens.
  A lot's entry fee is charged pro rata to the quantity closed from it.
- gross_pnl = side * (exit_price - entry_price) * quantity, summed over the lots closed;
  pnl = gross_pnl - fees, where fees = entry-fee shares + the exit fee share.
- A round trip is one exit fill that closes quantity: it may close several lots, so its
  entry_price is their quantity-weighted average and entry_time the oldest lot's time.
  win_rate and the other trade metrics count these, one per exit fill.
- |quantity| < 1e-12 counts as zero, so float residue never leaves a phantom position.
- total_fees is the sum of every fill's fee, including the entry fees of still-open lots.
- Each lot remembers the fill that opened it (its origin), and a round trip lists what it took
  from each origin with that share's PnL (gross share minus the lot's entry-fee share and the
  exit fee pro rata): the PnL an entry realized is the sum of its shares.

Book and apply_fill are the incremental form: live trades keep one Book per (source, strategy,
asset) between batches; pair_fifo is the same rules over a whole list, for backtests.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

EPS = 1e-12
ACTIONS = {"BUY": 1, "SELL": -1}


@dataclass(frozen=True)
class Fill:
    """One executed trade: epoch-second timestamp, asset, BUY/SELL, price, quantity, fee."""

    timestamp: float
    asset: str
    action: str
    price: float
    quantity: float
    fee: float = 0.0


@dataclass(frozen=True)
class LotShare:
    """What one exit took from the lots one entry opened: quantity and the PnL it realized."""

    origin: int
    quantity: float
    pnl: float


@dataclass(frozen=True)
class RoundTrip:
    """The realized result of one exit fill against the FIFO lots it closed."""

    asset: str
    entry_time: float
    exit_time: float
    entry_price: float
    exit_price: float
    quantity: float
    side: str
    pnl: float
    gross_pnl: float
    fees: float
    shares: tuple[LotShare, ...] = ()


@dataclass(frozen=True)
class PairingResult:
    """Round trips, PnL per input fill, positions still open, fees and exposure intervals."""

    round_trips: list[RoundTrip]
    pnl_per_fill: list[float | None]
    open_positions: list[dict[str, object]]
    total_fees: float
    exposure_intervals: list[tuple[float, float | None]]


@dataclass
class Lot:
    """Open quantity at one entry price, with what is left of its entry fee."""

    qty: float
    price: float
    time: float
    fee: float
    origin: int = -1  # the opening fill: its index in pair_fifo, its trade id for live trades


@dataclass
class Book:
    """One FIFO queue of lots, all on one side (+1 long, -1 short, 0 flat)."""

    side: int = 0
    qty: float = 0.0
    lots: deque[Lot] = field(default_factory=deque)


def check_fill(fill: Fill) -> int:
    """Return the fill's sign (+1 BUY, -1 SELL), or raise ValueError if it is unusable."""
    sign = ACTIONS.get(fill.action.upper())
    if sign is None:
        raise ValueError(f"unknown action {fill.action!r}: expected BUY or SELL")
    numbers = (fill.timestamp, fill.price, fill.quantity, fill.fee)
    if not all(math.isfinite(x) for x in numbers):
        raise ValueError(f"non-finite number in fill {fill!r}")
    if fill.quantity < 0 or fill.price < 0:
        raise ValueError(f"negative price or quantity in fill {fill!r}")
    return sign


def _close(book: Book, fill: Fill, qty: float, exit_fee: float) -> RoundTrip:
    """Close qty from the front of the book at the fill's price; the book is mutated."""
    side, remaining = book.side, qty
    gross = cost = entry_fees = 0.0
    entry_time = book.lots[0].time
    shares = []
    while remaining > EPS and book.lots:
        lot = book.lots[0]
        take = min(lot.qty, remaining)
        share = lot.fee * take / lot.qty
        piece = side * (fill.price - lot.price) * take
        shares.append(LotShare(lot.origin, take, piece - share - exit_fee * take / qty))
        gross += piece
        cost += lot.price * take
        entry_fees += share
        lot.qty, lot.fee, remaining = lot.qty - take, lot.fee - share, remaining - take
        if lot.qty < EPS:
            book.lots.popleft()
    book.qty -= qty
    if not book.lots or book.qty < EPS:
        book.side, book.qty, book.lots = 0, 0.0, deque()
    fees = entry_fees + exit_fee
    return RoundTrip(
        asset=fill.asset, entry_time=entry_time, exit_time=fill.timestamp,
        entry_price=cost / qty, exit_price=fill.price, quantity=qty,
        side="long" if side > 0 else "short", pnl=gross - fees, gross_pnl=gross, fees=fees,
        shares=tuple(shares),
    )


def apply_fill(book: Book, fill: Fill, sign: int, origin: int = -1) -> RoundTrip | None:
    """Apply one fill (of sign +1 BUY / -1 SELL) to its asset's book; what is opened is a lot
    of ORIGIN. Returns the round trip if it closed anything."""
    trip = None
    opening = fill.quantity
    if book.side == -sign:
        closing = min(fill.quantity, book.qty)
        if abs(fill.quantity - book.qty) < EPS:
            closing = book.qty  # within EPS of the position: a full close, no dust reversal
        opening = fill.quantity - closing
        trip = _close(book, fill, closing, fill.fee * closing / fill.quantity)
    if opening >= EPS:
        book.side = sign
        book.qty += opening
        entry_fee = fill.fee * opening / fill.quantity
        book.lots.append(Lot(opening, fill.price, fill.timestamp, entry_fee, origin))
    return trip


def _position(asset: str, book: Book) -> dict[str, object]:
    """Describe an open book as a JSON-ready dict."""
    cost = math.fsum(lot.price * lot.qty for lot in book.lots)
    return {
        "asset": asset, "side": "long" if book.side > 0 else "short", "quantity": book.qty,
        "avg_entry_price": cost / book.qty, "opened_at": book.lots[0].time,
    }


def pair_fifo(fills: Sequence[Fill]) -> PairingResult:
    """Pair fills FIFO per asset into round trips, PnL per fill, open positions and exposure."""
    order = sorted(range(len(fills)), key=lambda i: fills[i].timestamp)
    books: dict[str, Book] = {}
    pnl: list[float | None] = [None] * len(fills)
    trips: list[RoundTrip] = []
    intervals: list[tuple[float, float | None]] = []
    open_assets, start = 0, 0.0
    for i in order:
        fill = fills[i]
        sign = check_fill(fill)
        if fill.quantity < EPS:
            continue
        book = books.setdefault(fill.asset, Book())
        before = open_assets
        was_open = book.side != 0
        trip = apply_fill(book, fill, sign, origin=i)
        if trip is not None:
            trips.append(trip)
            pnl[i] = trip.pnl
        open_assets += (book.side != 0) - was_open
        if not before and open_assets:
            start = fill.timestamp
        elif before and not open_assets and fill.timestamp > start:
            intervals.append((start, fill.timestamp))
    if open_assets:
        intervals.append((start, None))
    still_open = sorted((b.lots[0].time, a) for a, b in books.items() if b.side != 0)
    positions = [_position(a, books[a]) for _, a in still_open]
    total_fees = math.fsum(f.fee for f in fills)
    return PairingResult(trips, pnl, positions, total_fees, intervals)
