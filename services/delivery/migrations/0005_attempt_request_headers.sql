-- The request headers each attempt was sent with, as the registry's delivery detail shows
-- them: signatures keep only their scheme and the webhook's own header values are masked
-- (services/delivery/sent_headers.py). NULL for attempts recorded before, and for an attempt
-- that sent no request.
--
-- On the partitioned parent, so every day's partition has the column, those made later
-- included (they are made as partitions of the parent). A nullable column without a default
-- changes only the catalog: no partition is rewritten, the lock is held for moments.
ALTER TABLE delivery_attempts ADD COLUMN request_headers jsonb;
