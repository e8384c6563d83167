"""The machine's own speed, beside the figures: three fixed gauges timed before the bench starts
anything and before each part.

A VM's core can run at half its usual speed on some days with nothing inside the VM to show
it (no steal time, the same clock rate), and then every figure of the run falls with it. A
neighbour's load can slow the kernel or memory without touching the interpreter's speed, so
there is a gauge per kind of work the services do: Python's interpreter (a loop), the kernel's
loopback TCP (what every POST, fetch and query goes through) and memory latency (a large
index, the broker's log). Two runs' figures compare only when their gauges read about alike.
"""

from __future__ import annotations

import array
import functools
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

LOOPS = 2_000_000
REPEATS = 3
ROUND_TRIPS = 10_000
READS = 500_000
ARRAY_BYTES = 64 * 1024 * 1024


def _fastest(run: Callable[[], float], repeats: int) -> float:
    return min(run() for _ in range(repeats))


def loop_s(loops: int = LOOPS, repeats: int = REPEATS) -> float:
    """The fastest of `repeats` timings of `loops` additions of a square, in seconds."""

    def once() -> float:
        started = time.perf_counter()
        total = 0
        for i in range(loops):
            total += i * i
        return time.perf_counter() - started

    return _fastest(once, repeats)


def round_trip_us(trips: int = ROUND_TRIPS, repeats: int = REPEATS) -> float:
    """One byte there and one back over a loopback TCP connection (no Nagle), in µs: the
    fastest of `repeats` means of `trips` round trips, both ends in this thread."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as near:
            far, _ = server.accept()
            with far:
                for end in (near, far):
                    end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def once() -> float:
                    started = time.perf_counter()
                    for _ in range(trips):
                        near.send(b"?")
                        far.recv(1)
                        far.send(b"!")
                        near.recv(1)
                    return (time.perf_counter() - started) / trips * 1e6

                return _fastest(once, repeats)


@functools.cache
def _scattered() -> tuple[array.array, array.array]:
    """A zeroed array of ARRAY_BYTES and READS indices spread over it (the same every run)."""
    cells = ARRAY_BYTES // 8
    draw = random.Random(7)
    return array.array("q", bytes(ARRAY_BYTES)), array.array(
        "l", (draw.randrange(cells) for _ in range(READS))
    )


def random_read_ns(repeats: int = REPEATS) -> float:
    """One read at a random place of ARRAY_BYTES, in ns, Python's loop included: the fastest
    of `repeats` means of READS reads."""
    cells, spots = _scattered()

    def once() -> float:
        started = time.perf_counter()
        total = 0
        for spot in spots:
            total += cells[spot]
        return (time.perf_counter() - started) / len(spots) * 1e9

    return _fastest(once, repeats)


@dataclass(frozen=True)
class Gauge:
    key: str  # in each reading
    label: str  # the table's row: "machine: <label>"
    unit: str
    what: str  # the row's note
    measure: Callable[[], float]


GAUGES = (
    Gauge(
        "loop_s",
        "a pure-Python loop",
        "s",
        f"{LOOPS:,} iterations, best of {REPEATS}",
        loop_s,
    ),
    Gauge(
        "round_trip_us",
        "a loopback TCP round trip",
        "µs",
        f"mean of {ROUND_TRIPS:,}, best of {REPEATS}",
        round_trip_us,
    ),
    Gauge(
        "random_read_ns",
        "a random memory read",
        "ns",
        f"over {ARRAY_BYTES >> 20} MB, Python's loop included, best of {REPEATS}",
        random_read_ns,
    ),
)


def reading() -> dict[str, float]:
    """Every gauge, once: {key: value in its unit}."""
    return {gauge.key: gauge.measure() for gauge in GAUGES}
