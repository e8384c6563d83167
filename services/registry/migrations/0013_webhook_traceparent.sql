-- Per webhook, whether its requests carry a W3C `traceparent` header naming the attempt's
-- span (delivery sends it while tracing is on), so a receiver that traces joins our trace.
-- Off for every webhook before this, and by default.
ALTER TABLE webhooks ADD COLUMN send_traceparent boolean NOT NULL DEFAULT false;
