"""Start-up of `python main.py` to ready: NATS, database and HTTP up (the banner printed).

    python tests/bench/bench_startup.py [--runs 5]

Each run starts in a fresh data folder (a new SQLite file and JetStream store) and once more
in the folder of the previous run (existing store and database).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.bench.common import quiet_hub


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--runs", type=int, default=5)
    args = cli.parse_args()
    fresh, again = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            for timings in (fresh, again):
                hub = quiet_hub(Path(scratch))
                timings.append(hub.ready_after)
                hub.stop()
    for name, timings in (("fresh data folder", fresh), ("existing data folder", again)):
        print(f"  {name:<22} median {statistics.median(timings):.2f} s  max {max(timings):.2f} s"
              f"  ({', '.join(f'{t:.2f}' for t in timings)})")


if __name__ == "__main__":
    main()
