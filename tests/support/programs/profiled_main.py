"""main.py under a statistical CPU profiler, switched on and off by signals.

    python -m tests.support.programs.profiled_main SAMPLES.json

Between SIGUSR1 and SIGUSR2 (the measured window, not the imports and start-up) an ITIMER_PROF
timer interrupts the process every millisecond of CPU it uses (in effect once per kernel tick of
CPU, 4 ms at HZ=250), and the Python stack it interrupted is counted. Idle time is never
sampled, and the cost is one stack walk per sample, so the figures are the CPU split, barely
disturbed. Time in C (orjson, pydantic-core, asyncpg's protocol, uvloop) lands on the Python
frame that called it or runs next. The samples are written to SAMPLES.json at SIGUSR2, as
[[count, [innermost frame, ...]], ...], each frame "file:function".
"""

from __future__ import annotations

import collections
import json
import runpy
import signal
import sys
from types import FrameType

samples: collections.Counter[tuple[str, ...]] = collections.Counter()


def sample(_signum: int, frame: FrameType | None) -> None:
    stack: list[str] = []
    while frame is not None and len(stack) < 60:
        stack.append(frame.f_code.co_filename + ":" + frame.f_code.co_name)
        frame = frame.f_back
    samples[tuple(stack)] += 1


def start(_signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)


def stop_and_write(path: str) -> None:
    signal.setitimer(signal.ITIMER_PROF, 0, 0)
    with open(path, "w") as out:
        json.dump([[count, list(stack)] for stack, count in samples.items()], out)


if __name__ == "__main__":
    path = sys.argv[1]
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, lambda _signum, _frame: stop_and_write(path))
    sys.argv = ["main.py"]
    runpy.run_path("main.py", run_name="__main__")
