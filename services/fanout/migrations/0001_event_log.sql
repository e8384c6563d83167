-- Fanout records every event it reads from <ns>.events, once per batch, before it commits
-- the batch's offsets: an accepted event with the body its webhooks receive (the one copy of
-- the payload) and whom it reached; a refused one with the reason, when its organization id
-- can be read. The registry reads this table to serve the event log.

CREATE TABLE events (
    -- Accepted: UUIDv5(organization id, event id), so a re-read event is recorded once;
    -- refused: UUIDv5 of where it was read (topic, partition, offset, record timestamp).
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    event_id        text,                      -- the producer's id; NULL when unreadable
    event           text,                      -- the name; NULL when unreadable
    room_id         text,
    status          text NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reason          text,                      -- why it was refused (at most 1,000 characters)
    payload         text,                      -- accepted: the body webhooks get, tokens stripped
    webhook_ids     uuid[] NOT NULL,           -- whom it reached: delivery ids and run ids are
    workflow_ids    uuid[] NOT NULL,           -- UUIDv5(webhook or workflow id, event id)
    received_at     timestamptz NOT NULL
);

-- What fanout writes: one multi-row INSERT per batch, `unnest`ed from an array of these.
CREATE TYPE entry AS (
    id              uuid,
    organization_id uuid,
    event_id        text,
    event           text,
    room_id         text,
    status          text,
    reason          text,
    payload         text,
    webhook_ids     uuid[],
    workflow_ids    uuid[],
    received_at     timestamptz
);

-- The log's routes, newest first: the account's whole log (and `since`, `until`, `cursor`,
-- `status=accepted`, which hold nearly every row), by event name, by room, refused only.
CREATE INDEX events_log_idx ON events (organization_id, received_at DESC, id DESC);
CREATE INDEX events_by_event_idx ON events (organization_id, event, received_at DESC, id DESC);
CREATE INDEX events_by_room_idx ON events (organization_id, room_id, received_at DESC, id DESC);
CREATE INDEX events_rejected_idx ON events (organization_id, received_at DESC, id DESC)
    WHERE status = 'rejected';
-- One refused event by the id it carried (accepted ones are found by primary key).
CREATE INDEX events_rejected_by_id_idx ON events (organization_id, event_id)
    WHERE status = 'rejected';
