"""The hub's own CPU per trade on the ingest path, part by part, against a reference in the same run.

    python tests/bench/bench_trade_path.py [--trades 100000] [--rounds 5]

The parts are what the trades consumer does to each message beside nats-py's reading and
acking: decoding and validating it (`bus.codec.decode`), the row values of the SQLite INSERT,
and the announcement's JSON (`trade_document`). The payloads are the ingest benchmark's
(tests/support/programs/publish_trades.py). The reference is `orjson.loads` of the same
payloads, the least any consumer of JSON events does: on a shared machine the ratios to it
hold where the microseconds drift. Each figure is the best of --rounds rounds. The script
imports only what the hub has had since the ingest path was first measured, so it can be run
against an older checkout (put it there and run it with that checkout's interpreter path).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402

from bus.codec import decode  # noqa: E402
from core.events import TradeExecuted  # noqa: E402
from handlers.events.trade_executed import trade_document  # noqa: E402
from storage.sql.trade_rows import _sqlite_values  # noqa: E402

try:  # since 2026-12-04 the document is made from the stored fields' JSON, which PostgreSQL reads
    from storage.sql.trade_rows import stored_json  # noqa: E402

    def announcement(row_id: int, event: TradeExecuted) -> bytes:
        return trade_document(row_id, stored_json(event))
except ImportError:
    def announcement(row_id: int, event: TradeExecuted) -> bytes:
        return trade_document(row_id, event)  # type: ignore[arg-type]


def payloads(total: int) -> list[bytes]:
    """TOTAL trades as publish_trades.py sends them."""
    return [orjson.dumps({
        "event_id": f"bench-{i}", "timestamp": "2024-05-01T12:00:00Z", "asset": "BTC",
        "action": "SELL" if i % 2 else "BUY", "price": 40000.0 + i % 1000, "quantity": 0.25,
        "reasoning": "RSI(14) crossed back above 30 with rising volume; trend filter positive",
        "confidence": i % 101, "source": "bench-bot", "strategy": "bench"}) for i in range(total)]


def per_trade(work: Callable[[], object], total: int, rounds: int) -> float:
    """Microseconds per trade of WORK over TOTAL trades, best of ROUNDS."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / total * 1e6


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--trades", type=int, default=100_000)
    cli.add_argument("--rounds", type=int, default=5)
    args = cli.parse_args()
    data = payloads(args.trades)
    events = [decode(TradeExecuted, payload, 1 << 20) for payload in data]
    figures = {
        "reference: orjson.loads": per_trade(lambda: [orjson.loads(p) for p in data], args.trades, args.rounds),
        "decoding and validating": per_trade(
            lambda: [decode(TradeExecuted, p, 1 << 20) for p in data], args.trades, args.rounds),
        "SQLite row values": per_trade(lambda: [_sqlite_values(e) for e in events], args.trades, args.rounds),
        "announcement JSON": per_trade(
            lambda: [announcement(i, e) for i, e in enumerate(events)], args.trades, args.rounds),
    }
    reference = figures["reference: orjson.loads"]
    for name, micros in figures.items():
        print(f"{name:26s} {micros:5.2f} µs/trade  {micros / reference:5.2f}x the reference")


if __name__ == "__main__":
    main()
