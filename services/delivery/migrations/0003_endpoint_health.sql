-- Endpoint health, kept as attempts are recorded (one upsert per recorded batch), so the
-- registry's /stats never scans delivery_attempts.

-- Attempts of one webhook per minute (period_s 60, for the 1h window) and per hour
-- (period_s 3600, for 24h and 7d). latency_ms[i] counts attempts that took at most
-- LATENCY_BOUNDS_MS[i] ms (shared/latency_buckets.py); the last element counts the
-- slower ones.
CREATE TABLE attempt_stats (
    webhook_id   uuid NOT NULL,
    period_s     integer NOT NULL CHECK (period_s IN (60, 3600)),
    bucket_start timestamptz NOT NULL,
    attempts     integer NOT NULL,
    successes    integer NOT NULL,             -- each ended its delivery as success
    gave_up      integer NOT NULL,             -- each ended its delivery as failed
    latency_ms   integer[] NOT NULL,
    PRIMARY KEY (webhook_id, period_s, bucket_start)
);

-- One row per webhook that has had an attempt: what the stats answer and auto-disable read.
CREATE TABLE webhook_health (
    webhook_id        uuid PRIMARY KEY,
    last_success_at   timestamptz,
    last_failure_at   timestamptz,
    last_error        text,
    failure_streak    integer NOT NULL DEFAULT 0,   -- failed attempts since the last success
    last_gave_up_at   timestamptz,                  -- a delivery last failed for good
    disable_sent_at   timestamptz,                  -- auto-disable last ordered
    updated_at        timestamptz NOT NULL
);
-- Auto-disable's sweep: webhooks with a delivery failed for good since their last success
-- and since the last order to disable them. Few rows: the index stays small.
CREATE INDEX webhook_health_failing_idx ON webhook_health (last_gave_up_at)
    WHERE last_gave_up_at IS NOT NULL
      AND (last_success_at IS NULL OR last_gave_up_at > last_success_at)
      AND (disable_sent_at IS NULL OR last_gave_up_at > disable_sent_at);
