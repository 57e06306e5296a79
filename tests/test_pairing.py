"""FIFO pairing: partial fills across lots, shorts, flips, fees, open positions, many assets."""

from __future__ import annotations

import pytest

from core.pairing import Fill, pair_fifo

approx = pytest.approx


def test_partial_exit_across_two_lots_allocates_entry_fees_pro_rata() -> None:
    result = pair_fifo([
        Fill(1.0, "BTC", "BUY", 100.0, 1.0, fee=1.0),
        Fill(2.0, "BTC", "BUY", 110.0, 2.0, fee=2.0),
        Fill(3.0, "BTC", "SELL", 120.0, 2.0, fee=0.4),
        Fill(4.0, "BTC", "SELL", 130.0, 0.5, fee=0.1),
    ])
    first, second = result.round_trips
    # Exit 1 takes all of lot 1 (1 @ 100, fee 1) and half of lot 2 (1 of 2 @ 110, fee 2 * 1/2).
    assert first.gross_pnl == approx((120 - 100) * 1 + (120 - 110) * 1)
    assert first.fees == approx(1.0 + 1.0 + 0.4)
    assert first.pnl == approx(30 - 2.4)
    assert (first.entry_price, first.entry_time, first.quantity) == approx((105.0, 1.0, 2.0))
    assert (first.exit_price, first.exit_time, first.side) == (120.0, 3.0, "long")
    # Exit 2 takes 0.5 of lot 2's remaining 1 unit and half of its remaining fee of 1.
    assert second.gross_pnl == approx((130 - 110) * 0.5)
    assert second.fees == approx(0.5 + 0.1)
    assert second.pnl == approx(10 - 0.6)
    assert second.entry_time == 2.0
    assert result.pnl_per_fill == [None, None, approx(27.6), approx(9.4)]
    assert result.total_fees == approx(1.0 + 2.0 + 0.4 + 0.1)
    [position] = result.open_positions
    assert position == {
        "asset": "BTC", "side": "long", "quantity": approx(0.5),
        "avg_entry_price": approx(110.0), "opened_at": 2.0,
    }
    assert result.exposure_intervals == [(1.0, None)]


def test_exit_larger_than_position_flips_to_short_and_splits_its_fee() -> None:
    result = pair_fifo([
        Fill(1.0, "ETH", "BUY", 100.0, 1.0),
        Fill(2.0, "ETH", "SELL", 90.0, 1.5, fee=0.3),
        Fill(3.0, "ETH", "BUY", 80.0, 0.5, fee=0.05),
    ])
    close_long, cover_short = result.round_trips
    # The 1.5 sell closes 1 long (fee 0.3 * 1/1.5 = 0.2) and opens 0.5 short (fee 0.1).
    assert close_long.side == "long"
    assert close_long.gross_pnl == approx(-10.0)
    assert close_long.pnl == approx(-10.2)
    assert close_long.quantity == approx(1.0)
    # Short 0.5 @ 90 covered @ 80: (90 - 80) * 0.5 = 5, fees 0.1 + 0.05.
    assert cover_short.side == "short"
    assert (cover_short.entry_price, cover_short.entry_time) == (90.0, 2.0)
    assert cover_short.gross_pnl == approx(5.0)
    assert cover_short.pnl == approx(4.85)
    assert result.open_positions == []
    assert result.exposure_intervals == [(1.0, 3.0)]  # the flip never leaves the book flat


def test_short_from_flat_covers_fifo_across_lots() -> None:
    result = pair_fifo([
        Fill(1.0, "SOL", "SELL", 50.0, 2.0),
        Fill(2.0, "SOL", "SELL", 56.0, 1.0),
        Fill(3.0, "SOL", "BUY", 40.0, 2.5),
    ])
    [trip] = result.round_trips
    assert trip.side == "short"
    assert trip.gross_pnl == approx((50 - 40) * 2.0 + (56 - 40) * 0.5)
    assert trip.entry_price == approx((50 * 2.0 + 56 * 0.5) / 2.5)
    assert result.open_positions == [{
        "asset": "SOL", "side": "short", "quantity": approx(0.5),
        "avg_entry_price": approx(56.0), "opened_at": 2.0,
    }]


def test_interleaved_assets_out_of_order_input_keep_pnl_in_input_order() -> None:
    result = pair_fifo([
        Fill(5.0, "BTC", "SELL", 120.0, 1.0),
        Fill(1.0, "BTC", "BUY", 100.0, 1.0),
        Fill(2.0, "ETH", "BUY", 10.0, 10.0),
        Fill(4.0, "ETH", "SELL", 12.0, 4.0),
        Fill(6.0, "ETH", "SELL", 9.0, 6.0),
    ])
    assert result.pnl_per_fill == [approx(20.0), None, None, approx(8.0), approx(-6.0)]
    assert [(t.asset, t.exit_time) for t in result.round_trips] == [
        ("ETH", 4.0), ("BTC", 5.0), ("ETH", 6.0),
    ]
    # BTC closes at 5 while ETH is still open, so exposure is one interval from 1 to 6.
    assert result.exposure_intervals == [(1.0, 6.0)]
    assert result.open_positions == []


def test_exposure_has_gaps_when_flat_and_open_end_when_still_in_a_position() -> None:
    result = pair_fifo([
        Fill(1.0, "X", "BUY", 1.0, 1.0), Fill(2.0, "X", "SELL", 1.0, 1.0),
        Fill(4.0, "X", "BUY", 1.0, 1.0), Fill(5.0, "X", "SELL", 1.0, 1.0),
        Fill(7.0, "Y", "SELL", 1.0, 1.0),
    ])
    assert result.exposure_intervals == [(1.0, 2.0), (4.0, 5.0), (7.0, None)]


def test_ties_are_processed_in_input_order() -> None:
    result = pair_fifo([Fill(1.0, "A", "SELL", 12.0, 2.0), Fill(1.0, "A", "BUY", 10.0, 1.0)])
    # SELL first opens a 2-unit short; the BUY covers 1 of it: (12 - 10) * 1.
    assert result.pnl_per_fill == [None, approx(2.0)]
    assert result.open_positions[0]["side"] == "short"


def test_float_residue_below_epsilon_leaves_no_phantom_position() -> None:
    result = pair_fifo([
        Fill(1.0, "A", "BUY", 10.0, 0.3),
        Fill(2.0, "A", "SELL", 11.0, 0.1),
        Fill(3.0, "A", "SELL", 11.0, 0.2),
        Fill(4.0, "B", "BUY", 10.0, 0.3),
        Fill(5.0, "B", "SELL", 10.0, 0.3 + 1e-14),
    ])
    assert result.open_positions == []
    assert result.exposure_intervals == [(1.0, 3.0), (4.0, 5.0)]
    assert sum(t.quantity for t in result.round_trips) == approx(0.6)


def test_zero_quantity_fill_counts_its_fee_but_trades_nothing() -> None:
    result = pair_fifo([Fill(1.0, "A", "buy", 10.0, 0.0, fee=0.5)])
    assert result.round_trips == [] and result.pnl_per_fill == [None]
    assert result.total_fees == 0.5 and result.exposure_intervals == []


def test_empty_input() -> None:
    result = pair_fifo([])
    assert (result.round_trips, result.pnl_per_fill, result.open_positions) == ([], [], [])
    assert result.total_fees == 0.0 and result.exposure_intervals == []


@pytest.mark.parametrize("fill", [
    Fill(1.0, "A", "HOLD", 10.0, 1.0),
    Fill(1.0, "A", "BUY", float("nan"), 1.0),
    Fill(1.0, "A", "BUY", 10.0, -1.0),
    Fill(float("inf"), "A", "BUY", 10.0, 1.0),
])
def test_unusable_fill_is_refused(fill: Fill) -> None:
    with pytest.raises(ValueError):
        pair_fifo([fill])
