"""The attempt latency histogram both delivery (which writes `delivery.attempt_stats`) and the
registry (which reads it for /stats) agree on: `latency_ms[i]` counts attempts that took at
most `LATENCY_BOUNDS_MS[i]` ms; one more element counts the slower ones."""

from __future__ import annotations

LATENCY_BOUNDS_MS = (
    *(1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700),
    *(1_000, 1_500, 2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000),
)
