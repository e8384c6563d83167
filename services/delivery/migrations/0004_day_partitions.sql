-- Deliveries and their attempts in day partitions (shared/partitions.py), so retention drops
-- a day of them at a time, at a cost that does not grow with the table. Existing rows are
-- copied into the default partitions, which retention empties in batches as they expire.
--
-- A partitioned table's unique constraints include its partition key: a delivery is unique
-- on (id, created_at) and (webhook_id, event_id, created_at). Inserts stay idempotent because
-- a request read twice carries the same created_at (fanout stamps it with the event record's
-- timestamp), so ON CONFLICT still finds the first row.

ALTER TABLE delivery_attempts RENAME TO delivery_attempts_unpartitioned;
ALTER TABLE delivery_attempts_unpartitioned
    DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
ALTER TABLE delivery_attempts_unpartitioned
    RENAME CONSTRAINT delivery_attempts_pkey TO delivery_attempts_unpartitioned_pkey;

ALTER TABLE deliveries RENAME TO deliveries_unpartitioned;
ALTER TABLE deliveries_unpartitioned
    RENAME CONSTRAINT deliveries_pkey TO deliveries_unpartitioned_pkey;
ALTER TABLE deliveries_unpartitioned
    RENAME CONSTRAINT deliveries_webhook_id_event_id_key TO deliveries_unpartitioned_key;
ALTER TABLE deliveries_unpartitioned
    RENAME CONSTRAINT deliveries_status_check TO deliveries_unpartitioned_status_check;
DROP INDEX deliveries_due_idx, deliveries_log_idx, deliveries_held_idx, deliveries_failed_idx;

CREATE TABLE deliveries (
    id              uuid NOT NULL,             -- UUIDv5(webhook id, event id)
    webhook_id      uuid NOT NULL,
    organization_id uuid NOT NULL,
    event_id        text NOT NULL,
    event           text NOT NULL,
    payload         text NOT NULL,             -- the exact bytes sent on every attempt
    status          text NOT NULL CHECK (status IN ('pending', 'success', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    status_code     integer,
    last_error      text,
    -- When the next attempt is due; NULL once the delivery is final (or held).
    next_attempt_at timestamptz,
    -- Set while one replica is attempting it; a crashed replica's lease runs out and
    -- another claims the delivery.
    lease_until     timestamptz,
    -- The partition key: every statement that finds a delivery by id gives it too, so
    -- Postgres reads one day's partition.
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (id, created_at),
    UNIQUE (webhook_id, event_id, created_at)
) PARTITION BY RANGE (created_at);

-- Made on the parent, so every partition has them. Each is read one partition after another
-- and merged (the claim, the log's pages, the held deliveries' skip scan) or, with a window
-- of created_at (recovery batches, a recovery window's count), in the window's days only.
-- The retry scheduler's claim: due, pending rows, oldest first.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log: one webhook's deliveries, newest first.
CREATE INDEX deliveries_log_idx ON deliveries (webhook_id, created_at DESC, id DESC);
-- Held deliveries: pending with next_attempt_at NULL, out of every claim, while their webhook
-- is disabled; resumed per webhook in order of creation once it is enabled again.
CREATE INDEX deliveries_held_idx ON deliveries (webhook_id, created_at, id)
    WHERE status = 'pending' AND next_attempt_at IS NULL;
-- One webhook's failed deliveries in order of creation: recovery's batches, and the
-- registry's count of a recovery window.
CREATE INDEX deliveries_failed_idx ON deliveries (webhook_id, created_at, id)
    WHERE status = 'failed';

-- Rows of a day without a partition of its own; retention empties it in batches on this index.
CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;
CREATE INDEX deliveries_default_created_at_idx ON deliveries_default (created_at);

-- No foreign key to deliveries (a partitioned table's key would have to include
-- delivery_created_at, and retention drops partitions, which a reference would forbid): an
-- attempt carries its delivery's created_at and lives in the same day as its delivery, so
-- retention drops a day's deliveries and their attempts together.
CREATE TABLE delivery_attempts (
    delivery_id         uuid NOT NULL,
    delivery_created_at timestamptz NOT NULL,  -- its delivery's created_at: the partition key
    attempt             integer NOT NULL,
    started_at          timestamptz NOT NULL,
    duration_ms         integer NOT NULL,
    status_code         integer,
    error               text,
    response_body       text,                  -- at most 4 KiB
    PRIMARY KEY (delivery_id, delivery_created_at, attempt)
) PARTITION BY RANGE (delivery_created_at);

CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT;
CREATE INDEX delivery_attempts_default_created_at_idx
    ON delivery_attempts_default (delivery_created_at);

INSERT INTO deliveries
    (id, webhook_id, organization_id, event_id, event, payload, status, attempts,
     last_attempt_at, status_code, last_error, next_attempt_at, lease_until, created_at,
     updated_at)
SELECT id, webhook_id, organization_id, event_id, event, payload, status, attempts,
       last_attempt_at, status_code, last_error, next_attempt_at, lease_until, created_at,
       updated_at
FROM deliveries_unpartitioned;

-- The old foreign key held every attempt to a delivery.
INSERT INTO delivery_attempts
    (delivery_id, delivery_created_at, attempt, started_at, duration_ms, status_code, error,
     response_body)
SELECT a.delivery_id, d.created_at, a.attempt, a.started_at, a.duration_ms, a.status_code,
       a.error, a.response_body
FROM delivery_attempts_unpartitioned a
JOIN deliveries_unpartitioned d ON d.id = a.delivery_id;

DROP TABLE delivery_attempts_unpartitioned;
DROP TABLE deliveries_unpartitioned;

-- A recovery job's items carry their delivery's created_at too, so counting the job's
-- progress reads each delivery in its own day. An item whose delivery is already gone gets
-- -infinity: no delivery has it, so it counts as gone, as it did.
ALTER TABLE recovery_items ADD COLUMN delivery_created_at timestamptz;
UPDATE recovery_items i SET delivery_created_at = coalesce(
    (SELECT d.created_at FROM deliveries d WHERE d.id = i.delivery_id), '-infinity');
ALTER TABLE recovery_items ALTER COLUMN delivery_created_at SET NOT NULL;

-- Retention's batches on plain tables (shared/partitions.py `delete_expired`): endpoint
-- stats by their bucket, finished recovery jobs by their last change (a running job is kept;
-- its items go with it, ON DELETE CASCADE).
CREATE INDEX attempt_stats_bucket_start_idx ON attempt_stats (bucket_start);
CREATE INDEX recoveries_finished_idx ON recoveries (updated_at) WHERE status <> 'running';
