-- Retention (services/registry/retention.py) removes audit entries and recovery jobs older
-- than ROOMHOOKS_RETENTION_DAYS in bounded batches: each batch finds its rows on an index
-- leading with the time, never by walking the table (the account-first indexes above serve
-- one account's pages, not "everything older than").
CREATE INDEX audit_log_created_idx ON audit_log (created_at);
CREATE INDEX jobs_created_idx ON jobs (created_at);
