"""Dead-letter records: the rejected bytes as received, with why and where from in headers.

Every consumed topic that can carry a malformed message has a `<topic>.dlq` beside it
(`Topics.dlq_of`). A dead-letter record keeps the original key, value and headers, and adds
`rh-error` (the reason), `rh-topic`, `rh-partition` and `rh-offset`.
"""

from __future__ import annotations

from collections.abc import Iterable

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
