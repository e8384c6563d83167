-- Each execution's fetches, one entry per `fetch` the code made, in order: its method, URL,
-- the status answered (null when none was: refused by the guard, timed out, broken off), its
-- duration and, without an answer, the error. NULL for executions recorded before.
--
-- On the partitioned parent, so every day's partition has the column, those made later
-- included. A nullable column without a default changes only the catalog: no partition is
-- rewritten, the lock is held for moments.
ALTER TABLE executions ADD COLUMN fetches jsonb;
