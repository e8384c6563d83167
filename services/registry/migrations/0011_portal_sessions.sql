-- Customer portal sessions: an OWNER or ADMIN key makes a one-time link for its customer;
-- the link is exchanged once for a session token that manages the account's webhooks (all
-- of them, or those listed) until expires_at. Only SHA-256 digests of the two tokens are
-- kept, as for API keys.
CREATE TABLE portal_sessions (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- null: every webhook of the account; else these, and those the session creates.
    webhook_ids   uuid[],
    read_only     boolean NOT NULL,
    link_hash     text NOT NULL UNIQUE,
    link_used_at  timestamptz,
    session_hash  text UNIQUE,   -- set when the link is exchanged
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    created_by    uuid           -- the API key that made it (no foreign key: kept after a revoke)
);
-- Retention (services/registry/retention.py) removes sessions long expired, found on this.
CREATE INDEX portal_sessions_expires_idx ON portal_sessions (expires_at);

-- What a portal session changes is audited with an actor of its own, naming the session.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_check
    CHECK (actor IN ('key', 'system', 'portal'));
ALTER TABLE audit_log ADD COLUMN portal_session_id uuid;
