"""Records a consumer would skip on the dev broker, fetched again instead.

Tansu 0.6 gives a produced batch its offsets before it stores the batch. When two producers
write to one partition at once, a fetch can return the later batch while the earlier one is
not stored yet, and the consumer moves past the earlier one for good. Measured with a live
consumer: two or four producers at 200-400 records/s each skipped 2-5 of 6,400-20,000 records
in most runs; one producer never did. All of them were in the topic when read again.

Real Kafka shows no record above the high watermark before those below it, and its gaps
(compaction, transaction markers) are real: the watch is off there (`KAFKA_GAP_RECHECK_MS=0`).

`GapWatch` decides, per partition, which fetched records to hand on: those before a gap. The
consumer then goes back to the gap's first offset and fetches again, until the gap fills or
has lasted `recheck_s`; then it is taken as real. In the chaos poison scenario the missing
batch arrived 2-30 ms after the gap was first seen. A partition's first fetch after it is
assigned sets the expectation, so a gap right at that point goes unseen.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gap:
    expected: int  # the offset the partition should have gone on with
    found: int  # the one it went on with


@dataclass(frozen=True)
class Admitted:
    keep: int  # how many of the fetched records to hand on
    refetch_from: int | None = None  # where to fetch again from, while a gap is young
    accepted: Gap | None = None  # a gap that lasted `recheck_s`: taken as real
    filled_after_s: float | None = None  # a gap seen before, filled on this fetch


@dataclass
class GapWatch:
    recheck_s: float
    # partition -> the offset after the last record handed on
    _next: dict[Hashable, int] = field(default_factory=dict)
    # partition -> (the gap's first offset, when it was first seen)
    _open: dict[Hashable, tuple[int, float]] = field(default_factory=dict)

    def moved(self, partition: Hashable, offset: int) -> None:
        """The consumer was told to go on from `offset` (a seek)."""
        self._next[partition] = offset
        self._open.pop(partition, None)

    def keep_only(self, partitions: Iterable[Hashable]) -> None:
        """Forget partitions no longer assigned: whoever had them meanwhile moved them on."""
        kept = set(partitions)
        for known in [p for p in self._next if p not in kept]:
            self._next.pop(known)
            self._open.pop(known, None)

    def admit(self, partition: Hashable, offsets: Sequence[int], now: float) -> Admitted:
        """`offsets`: one fetch's records for `partition`, ascending. A record below the
        expected offset is a rewind, not a gap; the first fetch of a partition sets the
        expectation."""
        expected = self._next.get(partition)
        opened = self._open.get(partition)
        accepted = None
        for index, offset in enumerate(offsets):
            if expected is not None and offset > expected:
                if opened is None or opened[0] != expected:
                    opened = (expected, now)
                    self._open[partition] = opened
                if now - opened[1] < self.recheck_s:
                    if index:
                        self._next[partition] = expected
                    return Admitted(keep=index, refetch_from=expected, accepted=accepted)
                accepted = Gap(expected, offset)
            expected = offset + 1
        filled_after = None
        if opened is not None and accepted is None and offsets and offsets[0] == opened[0]:
            filled_after = now - opened[1]
        self._open.pop(partition, None)
        if expected is not None:
            self._next[partition] = expected
        return Admitted(keep=len(offsets), accepted=accepted, filled_after_s=filled_after)
