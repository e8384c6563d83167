"""The instant fanout stamps on all it makes of one record of `<ns>.events`: the delivery and
run requests' `created_at` and the event log's `received_at` (pure, no I/O).

It is the record's own timestamp, not fanout's clock, so a record read twice (fanout stopped
after producing, before committing) gets the same stamp: the stamp is the partition key of the
event log, the deliveries and the executions, and their inserts find the first row of a
re-read record (ON CONFLICT) only under the same key. On `<ns>.events` created with
`message.timestamp.type=LogAppendTime` (shared/kafka/topics.py) the broker stamps each record,
so no producer's clock is trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A record stamped this much ahead of fanout's clock keeps its stamp: hosts kept by NTP differ
# by milliseconds, and a record read the instant the broker stamps it must not get the clock
# on its first read and its own stamp on the next.
MAX_AHEAD = timedelta(seconds=10)
# The records of one partition stamped within one millisecond keep the order read: each gets
# its offset's last three digits as microseconds (the log is newest first by the stamp).
_SPREAD = 1000


def record_stamp(
    timestamp_ms: int | None, offset: int, *, now: datetime, oldest: datetime
) -> datetime:
    """The stamp of the record at `offset`, whose Kafka timestamp is `timestamp_ms` (ms since
    the epoch, UTC; None or negative when it carries none).

    Fanout's clock `now` stands in for a timestamp that is missing, more than MAX_AHEAD ahead
    of `now` (a producer's clock running fast, on a CreateTime topic) or older than `oldest`
    (retention would remove the rows at once, and with them deliveries not yet sent). Only
    such a record can make a second row when it is read again: the clock has moved on.
    """
    spread = timedelta(microseconds=offset % _SPREAD)
    if timestamp_ms is None or timestamp_ms < 0:
        return now + spread
    stamped = _EPOCH + timedelta(milliseconds=timestamp_ms)
    if stamped > now + MAX_AHEAD or stamped < oldest:
        return now + spread
    return stamped + spread
