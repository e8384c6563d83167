-- Held deliveries: pending with next_attempt_at NULL, out of every claim, while their webhook
-- is disabled; resumed per webhook in order of creation once it is enabled again.
CREATE INDEX deliveries_held_idx ON deliveries (webhook_id, created_at, id)
    WHERE status = 'pending' AND next_attempt_at IS NULL;
-- One webhook's failed deliveries in order of creation: recovery's batches, and the
-- registry's count of a recovery window.
CREATE INDEX deliveries_failed_idx ON deliveries (webhook_id, created_at, id)
    WHERE status = 'failed';

-- A recovery job (ordered through the registry, registry.jobs): send again every failed
-- delivery of one webhook created in [since, until), a batch at a time.
CREATE TABLE recoveries (
    job_id           uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL,
    organization_id  uuid NOT NULL,
    since            timestamptz NOT NULL,
    until            timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    marked           integer NOT NULL DEFAULT 0,   -- deliveries made due so far
    done             integer NOT NULL DEFAULT 0,   -- of those, attempted since
    exhausted        boolean NOT NULL DEFAULT false, -- no failed delivery of the window left
    -- The last delivery marked, by (created_at, id): the next batch starts after it.
    after_created_at timestamptz,
    after_id         uuid,
    error            text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX recoveries_running_idx ON recoveries (updated_at) WHERE status = 'running';

-- Each delivery a job marked, with its attempt count then: attempted once it has more.
-- No foreign key to deliveries: retention may remove a delivery first.
CREATE TABLE recovery_items (
    job_id          uuid NOT NULL REFERENCES recoveries (job_id) ON DELETE CASCADE,
    delivery_id     uuid NOT NULL,
    attempts_before integer NOT NULL,
    attempted       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, delivery_id)
);
CREATE INDEX recovery_items_open_idx ON recovery_items (job_id) WHERE NOT attempted;
