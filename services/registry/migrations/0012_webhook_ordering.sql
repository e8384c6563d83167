-- Ordered delivery, opted into per webhook: 'room' sends its deliveries one at a time per
-- room (per webhook for organization events), in the order the events were published;
-- 'none' (every webhook before this) sends each at once.
ALTER TABLE webhooks ADD COLUMN ordering text NOT NULL DEFAULT 'none'
    CHECK (ordering IN ('none', 'room'));
