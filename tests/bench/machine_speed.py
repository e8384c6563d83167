"""The machine's own speed, beside the figures: a fixed pure-Python loop timed before the bench
starts anything and before each part.

A VM's core can run at half its usual speed on some days with nothing inside the VM to show
it (no steal time, the same clock rate), and then every figure of the run halves with it. Two
runs' figures compare only when their loops took about as long.
"""

from __future__ import annotations

import math
import time

LOOPS = 2_000_000
REPEATS = 3


def loop_s(loops: int = LOOPS, repeats: int = REPEATS) -> float:
    """The fastest of `repeats` timings of `loops` additions of a square, in seconds."""
    fastest = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        total = 0
        for i in range(loops):
            total += i * i
        fastest = min(fastest, time.perf_counter() - started)
    return fastest
