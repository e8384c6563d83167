-- API keys gain a lifecycle: a label for people, an optional expiry, and when each was last
-- used (to the minute, written at most once a minute per key by each replica).
ALTER TABLE api_keys
    ADD COLUMN label        text,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;
-- Listing an account's keys newest first, with a (created_at, id) cursor; it also serves
-- every lookup by account the old index did.
CREATE INDEX api_keys_account_created_idx ON api_keys (account_id, created_at DESC, id DESC);
DROP INDEX api_keys_account_idx;
