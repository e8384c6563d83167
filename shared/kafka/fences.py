"""What a group consumer may still commit or rewind once its group may have rebalanced.

aiokafka sends a commit under the group generation current when it is sent, not the one the
records were fetched under, and a `seek` moves whatever assignment is current. So a batch
fetched before a rebalance could commit offsets, or rewind a position, of the assignment that
replaced it. On real Kafka that can move a partition's committed offset under its new reader;
on the dev broker, which restarts with an empty log, a consumer still holding its position
from before the restart can fetch records of the new log from that position on, and
committing them, or rewinding to them once its group has re-joined, skips the new log's
first records for good.

The fence: an offset is committed, and a partition rewound to it, only when the current
assignment holds the partition and has fetched up to that offset (its position is at or past
it). After a rebalance the position is reset from the committed offset, so what was fetched
before is read again by the partition's reader (at-least-once; every consumer dedupes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiokafka import ConsumerRecord, TopicPartition

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord]]


class Rewinds(Protocol):
    """A consumer that can read a partition again from an earlier offset (`ServiceConsumer`)."""

    def rewind(self, partition: TopicPartition, offset: int) -> None: ...


def offsets_after(batch: Batch) -> dict[TopicPartition, int]:
    """The offsets that acknowledge `batch`: each partition's last record's, plus one."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


def read_again(consumer: Rewinds, batch: Batch) -> None:
    """Rewind each partition of `batch` to its first record, so the batch is fetched again
    (unless a rebalance moved the partition on: `may_rewind`)."""
    for tp, records in batch.items():
        if records:
            consumer.rewind(tp, records[0].offset)


def fetched_within(
    offsets: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, int]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Split `offsets` into those the current assignment has fetched up to (committable) and
    the rest. `positions` holds each assigned partition's next offset to fetch; a partition
    left out is not assigned, or its position is being reset."""
    kept: dict[TopicPartition, int] = {}
    stale: dict[TopicPartition, int] = {}
    for tp, offset in offsets.items():
        position = positions.get(tp)
        (kept if position is not None and offset <= position else stale)[tp] = offset
    return kept, stale


def may_rewind(offset: int, position: int | None) -> bool:
    """Whether a partition at `position` (None: not assigned, or being reset) may be moved
    back to `offset`: only backwards, within what the current assignment has fetched."""
    return position is not None and offset <= position
