-- A delivery's id is UUIDv5(webhook id, event id), and delivery stores no request whose id is
-- not (shared/messages.py, DeliveryRequested): its primary key (id, created_at) already makes
-- (webhook_id, event_id, created_at) unique. The second unique index cost every insert an
-- entry, and every update another (an attempt's update changes the status, so it is never a
-- HOT update): on the delivery bench, ~10 us of Postgres CPU a delivery; and ~80 bytes a row.
-- No query reads by it (a webhook's log has deliveries_log_idx). Dropped on the parent, it
-- goes from every partition.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_webhook_id_event_id_created_at_key;
