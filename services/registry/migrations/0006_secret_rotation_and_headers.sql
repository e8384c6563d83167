-- A rotation keeps the replaced secret signing for an overlap: it is kept sealed (like
-- secret_ciphertext) with the time it stops (both or neither). A webhook's custom headers are
-- kept as one sealed JSON object (their values may be credentials); null when it has none.
-- Delivery reads all three with the webhook (services/delivery/repository.py).
ALTER TABLE webhooks ADD COLUMN previous_secret_ciphertext text;
ALTER TABLE webhooks ADD COLUMN previous_secret_until timestamptz;
ALTER TABLE webhooks ADD COLUMN headers_ciphertext text;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_previous_secret_ends
    CHECK ((previous_secret_ciphertext IS NULL) = (previous_secret_until IS NULL));
