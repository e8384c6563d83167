"""How one batch of events' records reach the producer: one record at a time (`SendEach`), or
gathered into one record batch per topic partition (`PartitionBatches`, what fanout runs).

aiokafka's `send` cost fanout 16-19 us of CPU per record sent and acknowledged (choosing the
partition, a future per record and, on the broker's answer, a `RecordMetadata` and a callback
per record): a fifth of its CPU on the fan-out bench (py-spy). `PartitionBatches` appends
each record to its partition's batch (`create_batch`) and hands each batch over once
(`send_batch`), with one ack per batch: 7 us per record. The same partition for each key as
`send` picks (the producer's own partitioner), the same records in the same order, the same
refusal of a record too large for a request (tests/integration/test_fanout_contracts.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

Headers = Sequence[tuple[str, bytes]]
# aiokafka's `partitioner`: (key, all partitions, available partitions) -> partition.
Partitioner = Callable[[bytes | None, list[int], list[int]], int]


class RecordBatches(Protocol):
    """One batch of events' records on their way to the producer. `add` takes a record or
    raises `MessageSizeTooLargeError` for one the broker could never take (nothing else of
    it is sent); `flush` hands over what was added and returns the acks to await: once they
    are done, the broker holds every record added, durably. Records of one key reach their
    partition in the order added. Used for one batch of events, then dropped."""

    async def add(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None: ...

    async def flush(self) -> list[asyncio.Future]: ...


class RecordSink(Protocol):
    """Where routed records go (the producer): `send` hands a record over and returns its
    ack; awaiting the ack returns once the broker holds the record durably, or raises. Records
    of one key reach their partition in the order sent."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future: ...


class SendEach:
    """`RecordBatches` sending each record as it is added (`send`, one ack per record)."""

    def __init__(self, producer: RecordSink) -> None:
        self._producer = producer
        self._acks: list[asyncio.Future] = []

    async def add(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        self._acks.append(await self._producer.send(topic, value=value, key=key, headers=headers))

    async def flush(self) -> list[asyncio.Future]:
        acks, self._acks = self._acks, []
        return acks


class PartitionBatches:
    """`RecordBatches` on an aiokafka producer: one record batch per topic partition, full
    ones handed over as they fill (the producer's `max_batch_size`), the rest at `flush`.

    A topic's partitions are read once per instance (once per batch of events): a partition
    count that changes meanwhile reaches the next batch's records."""

    def __init__(
        self, producer: AIOKafkaProducer, *, partitioner: Partitioner, max_request_size: int
    ) -> None:
        """`partitioner` and `max_request_size`: the producer's own (`send` picks partitions
        with the one and refuses a record above the other)."""
        self._producer = producer
        self._partitioner = partitioner
        self._max_request_size = max_request_size
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
        self._acks: list[asyncio.Future] = []

    async def add(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > self._max_request_size:  # as `send` refuses it, with its words
            raise MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the"
                " maximum request size you have configured with the max_request_size"
                " configuration"
            )
        partitions = self._partitions.get(topic)
        if partitions is None:
            # As `send` reads them: list() of the metadata's set, in the same order.
            partitions = self._partitions[topic] = list(await self._producer.partitions_for(topic))
        partition = self._partitioner(key, partitions, partitions)
        where = (topic, partition)
        builder = self._open.get(where)
        if builder is None:
            builder = self._open[where] = self._producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            # Full: hand it over, then start the next (a batch's first record always fits).
            await self._hand_over(where, builder)
            builder = self._open[where] = self._producer.create_batch()
            builder.append(timestamp=None, key=key, value=value, headers=headers)

    async def flush(self) -> list[asyncio.Future]:
        open_batches, self._open = self._open, {}
        for where, builder in open_batches.items():
            await self._hand_over(where, builder)
        acks, self._acks = self._acks, []
        return acks

    async def _hand_over(self, where: tuple[str, int], builder: Any) -> None:
        builder.close()
        topic, partition = where
        self._acks.append(await self._producer.send_batch(builder, topic, partition=partition))
