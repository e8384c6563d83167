"""The instant fanout stamps on all it makes of one event: the delivery and run requests'
`created_at` and the event log's `received_at` (pure, no I/O).

The stamp is the partition key of the event log, the deliveries and the executions, and their
inserts find the first row of an event seen again (ON CONFLICT) only under the same key. So it
must be the same every time one event comes: when fanout reads a record again (it stopped
after producing, before committing) and when a producer publishes one event again (a retry
after a timeout). Hence two steps:

- `record_stamp`: the record's timestamp, not fanout's clock, the same on every read. On
  `<ns>.events` created with `message.timestamp.type=LogAppendTime` (shared/kafka/topics.py)
  the broker stamps each record, so no producer's clock is trusted for it.
- `event_stamp`: the event's own `timestamp`, the same in every copy a producer sends, when it
  lies within MAX_BEHIND before the record's stamp (or MAX_AHEAD after it); otherwise the
  record's stamp. A producer's clock thus moves the stamp by an hour at most.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A record stamped this much ahead of fanout's clock keeps its stamp: hosts kept by NTP differ
# by milliseconds, and a record read the instant the broker stamps it must not get the clock
# on its first read and its own stamp on the next.
MAX_AHEAD = timedelta(seconds=10)
# How long before its record an event may say it happened and keep its own timestamp as the
# stamp: a producer that retries or buffers for longer makes a second row on a retry.
MAX_BEHIND = timedelta(hours=1)


def record_stamp(timestamp_ms: int | None, *, now: datetime, oldest: datetime) -> datetime:
    """The stamp of a record whose Kafka timestamp is `timestamp_ms` (ms since the epoch,
    UTC; None or negative when it carries none).

    Fanout's clock `now` stands in for a timestamp that is missing, more than MAX_AHEAD ahead
    of `now` (a producer's clock running fast, on a CreateTime topic) or older than `oldest`
    (retention would remove the rows at once, and with them deliveries not yet sent). Only
    such a record can make a second row when it is read again: the clock has moved on.
    """
    if timestamp_ms is None or timestamp_ms < 0:
        return now
    stamped = _EPOCH + timedelta(milliseconds=timestamp_ms)
    if stamped > now + MAX_AHEAD or stamped < oldest:
        return now
    return stamped


def event_stamp(happened_at: datetime, record: datetime, *, oldest: datetime) -> datetime:
    """The stamp of a valid event that says it happened at `happened_at`, read from a record
    stamped `record` (`record_stamp`): its own time when that is near the record's and not
    older than retention keeps, else the record's."""
    if record - MAX_BEHIND <= happened_at <= record + MAX_AHEAD and happened_at >= oldest:
        return happened_at
    return record
