-- Executions are kept for ROOMHOOKS_RETENTION_DAYS (services/workflow_runner/retention.py):
-- `executions` becomes partitioned by day on created_at, so retention drops a whole day at a
-- time (shared/partitions.py makes the days ahead and drops the old ones). A partitioned
-- table's unique keys hold its partition key: the primary key is (id, created_at). created_at
-- is the run request's, which fanout stamps with its event's Kafka record timestamp, so a run
-- requested again has the same key and is still recorded once.
--
-- The rows already there are copied: they land in executions_default, which retention
-- empties in batches as they expire. The projection tables (rooms, room_users, kv_entries,
-- files) are current state, not history: they stay as they are.

ALTER TABLE executions RENAME TO executions_unpartitioned;
ALTER TABLE executions_unpartitioned DROP CONSTRAINT executions_pkey;
DROP INDEX executions_log_idx;

CREATE TABLE executions (
    id              uuid NOT NULL,             -- run_id: UUIDv5(workflow id, event id)
    workflow_id     uuid NOT NULL,
    organization_id uuid NOT NULL,
    version         integer NOT NULL,
    event_id        text NOT NULL,
    event           text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'success', 'error', 'timeout')),
    started_at      timestamptz,
    duration_ms     integer,
    result          jsonb,
    error           jsonb,                      -- {"message", "stack"}
    logs            jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL,       -- the event's stamp: its received_at in events
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- On the parent, so every day's partition has them: a workflow's log, newest first, whole or
-- of one status (`GET .../executions?status=`: a rare status would otherwise walk the log).
CREATE INDEX executions_log_idx ON executions (workflow_id, created_at DESC, id DESC);
CREATE INDEX executions_by_status_idx ON executions (workflow_id, status, created_at DESC, id DESC);

-- A row of a day without a partition lands here; retention finds its expired rows by time.
CREATE TABLE executions_default PARTITION OF executions DEFAULT;
CREATE INDEX executions_default_created_at_idx ON executions_default (created_at);

INSERT INTO executions SELECT * FROM executions_unpartitioned;
DROP TABLE executions_unpartitioned;
