-- A webhook's pending deliveries, newest first: the delivery log's `status=pending` page. Few
-- of a webhook's deliveries are pending at a time, so without it the page read the webhook's
-- whole log in order and discarded the rest: 31-66 ms over 200,000 deliveries of a webhook,
-- against 0.3 ms with it. A delivery enters it once stored and leaves it once it ends; an
-- update that keeps it pending (a retry's schedule, a lease) adds an entry, as to every index
-- here (their predicates name `status`, so no update of it is HOT). Measured against the
-- local Postgres, storing and ending 5 deliveries (an INSERT and an UPDATE) took 5-10 % longer
-- with it: 0.74-0.94 ms against 0.71-0.85, in runs that alternated.
-- Built in this migration's transaction, one partition after another: inserts of new
-- deliveries wait meanwhile (it scans every row kept, a few seconds a million).
-- `webhook_id IS NOT NULL` is always true: it keeps the index to statements that name a
-- webhook. A lookup of one pending delivery by its key names none, and would be planned on it
-- whenever the day's statistics count few pending (as 0009 says of the claim's index).
CREATE INDEX deliveries_pending_idx ON deliveries (webhook_id, created_at DESC, id DESC)
    WHERE status = 'pending' AND webhook_id IS NOT NULL;
