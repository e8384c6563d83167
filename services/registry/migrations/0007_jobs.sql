-- Background jobs an account ordered: for now, recovering a webhook's failed deliveries.
-- The registry keeps the order; the delivery service runs it and keeps its progress
-- (delivery.recoveries, which the registry reads to answer GET .../jobs/{id}).
CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('recover')),
    -- No foreign key: a job stays readable after its webhook is deleted.
    webhook_id      uuid NOT NULL,
    since           timestamptz NOT NULL,
    until           timestamptz NOT NULL,
    total           integer NOT NULL,   -- failed deliveries in the window when ordered
    created_at      timestamptz NOT NULL
);
CREATE INDEX jobs_account_created_idx ON jobs (organization_id, created_at DESC);
