-- The retry scheduler's claim reads the pending deliveries it may lease now: due, and not
-- leased (or their lease ran out). Keyed by the due time alone, the index put every delivery
-- leased and in flight (stored leased at once, due at once) inside the claim's range, and
-- each claim fetched all of them from the table only to skip them: 0.9 ms a claim with
-- 10,000 in flight, 8 ms with 100,000, against 0.2 ms with none (measured over 54 day
-- partitions). Ordered delivery claims at every head's end, so it paid that many times a
-- second. Keyed by the later of the two times (GREATEST ignores a NULL lease), a leased
-- delivery sits past now until its lease runs out, out of every claim's range.
-- Only deliveries with a due time: the claim's `next_attempt_at <= now` implies it, and a
-- lookup of one pending delivery by its key does not, so it can never read this index. A
-- predicate of `status = 'pending'` alone let Postgres pick it for such lookups whenever
-- the day's statistics counted few pending (the last ANALYZE saw few): a scan of every
-- pending delivery of the day to find one, at each start of an ordered room's next delivery.
-- Built in this migration's transaction, one partition after another: inserts of new
-- deliveries wait meanwhile (seconds a million pending-or-not rows, scanned once).
CREATE INDEX deliveries_claimable_idx ON deliveries (GREATEST(next_attempt_at, lease_until))
    WHERE status = 'pending' AND next_attempt_at IS NOT NULL;
DROP INDEX deliveries_due_idx;
