-- The audit log: every change made through the API (by which key) and every change the
-- platform makes on its own (actor 'system'), each written in the transaction of its change.
-- Never a secret: `changes` holds field names, and values only where harmless.
CREATE TABLE audit_log (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    actor       text NOT NULL CHECK (actor IN ('key', 'system')),
    key_id      uuid,
    key_label   text,
    role        text,
    action      text NOT NULL,
    target_id   text,
    changes     jsonb NOT NULL DEFAULT '[]'
);
-- GET .../audit-log: one account's entries newest first, with a (created_at, id) cursor and
-- a `since` bound, all served by this one index.
CREATE INDEX audit_log_account_created_idx ON audit_log (account_id, created_at DESC, id DESC);
