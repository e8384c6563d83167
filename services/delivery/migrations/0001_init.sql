-- The delivery service owns every delivery and every attempt made for it.

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,          -- UUIDv5(webhook id, event id)
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
    -- When the next attempt is due; NULL once the delivery is final.
    next_attempt_at timestamptz,
    -- Set while one replica is attempting it; a crashed replica's lease runs out and
    -- another claims the delivery.
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (webhook_id, event_id)
);

-- The retry scheduler's claim: due, pending rows, oldest first.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log: one webhook's deliveries, newest first.
CREATE INDEX deliveries_log_idx ON deliveries (webhook_id, created_at DESC, id DESC);

CREATE TABLE delivery_attempts (
    delivery_id   uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    status_code   integer,
    error         text,
    response_body text,                        -- at most 4 KiB
    PRIMARY KEY (delivery_id, attempt)
);
