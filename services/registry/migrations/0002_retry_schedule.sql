-- A webhook may carry its own retry schedule (seconds between attempts); NULL: the
-- deployment's default (1 s, 5 s, 30 s).
ALTER TABLE webhooks ADD COLUMN retry_schedule integer[];
