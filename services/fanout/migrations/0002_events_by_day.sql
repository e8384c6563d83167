-- The event log is kept for ROOMHOOKS_RETENTION_DAYS (services/fanout/retention.py): `events`
-- becomes partitioned by day on received_at, so retention drops a whole day at a time
-- (shared/partitions.py makes the days ahead and drops the old ones). A partitioned table's
-- unique keys hold its partition key: the primary key is (id, received_at). Fanout stamps
-- received_at with the Kafka record's timestamp (services/fanout/stamps.py), so an event read
-- again has the same key and is still recorded once.
--
-- The rows already there are copied: they land in events_default, which retention empties in
-- batches as they expire. The `entry` type fanout inserts through stays as it is.

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned DROP CONSTRAINT events_pkey;
DROP INDEX events_log_idx, events_by_event_idx, events_by_room_idx, events_rejected_idx,
    events_rejected_by_id_idx;

CREATE TABLE events (
    -- Accepted: UUIDv5(organization id, event id); refused: UUIDv5 of where it was read
    -- (topic, partition, offset, record timestamp).
    id              uuid NOT NULL,
    organization_id uuid NOT NULL,
    event_id        text,                      -- the producer's id; NULL when unreadable
    event           text,                      -- the name; NULL when unreadable
    room_id         text,
    status          text NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reason          text,                      -- why it was refused (at most 1,000 characters)
    payload         text,                      -- accepted: the body webhooks get, tokens stripped
    webhook_ids     uuid[] NOT NULL,           -- whom it reached: delivery ids and run ids are
    workflow_ids    uuid[] NOT NULL,           -- UUIDv5(webhook or workflow id, event id)
    -- The record's stamp (services/fanout/stamps.py): its deliveries' and executions'
    -- created_at are the same instant.
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- On the parent, so every day's partition has them. The log's routes, newest first: the
-- account's whole log (and `since`, `until`, `cursor`, `status=accepted`), by event name, by
-- room, refused only; one refused event by the id it carried.
CREATE INDEX events_log_idx ON events (organization_id, received_at DESC, id DESC);
CREATE INDEX events_by_event_idx ON events (organization_id, event, received_at DESC, id DESC);
CREATE INDEX events_by_room_idx ON events (organization_id, room_id, received_at DESC, id DESC);
CREATE INDEX events_rejected_idx ON events (organization_id, received_at DESC, id DESC)
    WHERE status = 'rejected';
CREATE INDEX events_rejected_by_id_idx ON events (organization_id, event_id)
    WHERE status = 'rejected';

-- A row of a day without a partition lands here; retention finds its expired rows by time.
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_default_received_at_idx ON events_default (received_at);

INSERT INTO events SELECT * FROM events_unpartitioned;
DROP TABLE events_unpartitioned;
