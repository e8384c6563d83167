-- The trace a delivery belongs to: the W3C `traceparent` of the span that stored its request
-- (shared/tracing.py), so each attempt, a retry claimed later or by another replica
-- included, is a span of the same trace. NULL when tracing was off as it was stored.
--
-- On the partitioned parent, so every day's partition has the column, those made later
-- included (they are made as partitions of the parent). A nullable column without a default
-- changes only the catalog: no partition is rewritten, the lock is held for moments.
ALTER TABLE deliveries ADD COLUMN traceparent text;
