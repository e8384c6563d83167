-- The registry owns accounts, API keys, webhooks and the outbox that publishes their changes.

CREATE TABLE accounts (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'MEMBER')),
    -- SHA-256 of the token, hex: the token itself is shown once and never stored.
    token_sha256 text NOT NULL UNIQUE,
    -- The first characters of the token, so an operator can tell keys apart.
    token_prefix text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            text,
    url             text NOT NULL,
    secret          text NOT NULL,
    events          text[] NOT NULL,
    room_id         text,
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    -- Bumped on every change, published with the record: consumers drop stale copies.
    revision        bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- Listing newest first, per account, with a (created_at, id) cursor.
CREATE INDEX webhooks_account_created_idx ON webhooks (organization_id, created_at DESC, id DESC);

-- Transactional outbox: written in the same transaction as the change it announces,
-- published to Kafka by the relay, deleted once the broker acknowledged it.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea NOT NULL,
    value       bytea,              -- NULL: a tombstone
    created_at  timestamptz NOT NULL DEFAULT now()
);
