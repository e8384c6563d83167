"""Dead-letter records: the rejected bytes as received, with why and where from in headers.

Every consumed topic that can carry a malformed message has a `<topic>.dlq` beside it
(`Topics.dlq_of`). A dead-letter record keeps the original key, value and headers, and adds
`rh-error` (the reason), `rh-topic`, `rh-partition` and `rh-offset`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError

H_ERROR, H_TOPIC, H_PARTITION, H_OFFSET = "rh-error", "rh-topic", "rh-partition", "rh-offset"
_DLQ_HEADERS = frozenset({H_ERROR, H_TOPIC, H_PARTITION, H_OFFSET})
# A reason is a sentence, not a document: bounded so a header never nears a record's limit.
REASON_MAX_CHARS = 1000


def dlq_headers(
    reason: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    original: Iterable[tuple[str, bytes]] = (),
) -> list[tuple[str, bytes]]:
    """The original headers (minus any rh-* of ours) followed by why and where from."""
    kept = [(k, v) for k, v in original if k not in _DLQ_HEADERS]
    return [
        *kept,
        (H_ERROR, reason[:REASON_MAX_CHARS].encode("utf-8", errors="backslashreplace")),
        (H_TOPIC, topic.encode("utf-8")),
        (H_PARTITION, str(partition).encode()),
        (H_OFFSET, str(offset).encode()),
    ]


# A record too large for the producer beside our headers keeps its head: set aside all the
# same, rather than failing its batch on every retry.
CUT_BYTES = 512 * 1024


async def send_dead_letter(
    producer: AIOKafkaProducer, dlq_topic: str, record: ConsumerRecord, reason: str
) -> asyncio.Future:
    """Send `record` to `dlq_topic` with why and where from; returns the ack to await.

    At-least-once, as every producer here: await the ack before committing the record's
    offset (a crash in between dead-letters it again).
    """
    where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    headers = dlq_headers(reason, original=record.headers or (), **where)
    try:
        return await producer.send(dlq_topic, record.value, key=record.key, headers=headers)
    except MessageSizeTooLargeError:
        size = len(record.value or b"")
        cut = f"{reason} (value cut to its first {CUT_BYTES} of {size} bytes)"
        return await producer.send(
            dlq_topic,
            (record.value or b"")[:CUT_BYTES],
            key=(record.key or b"")[:CUT_BYTES] or None,
            headers=dlq_headers(cut, **where),
        )
