-- Ordered delivery: the deliveries of a webhook with `ordering: "room"` go one at a time per
-- (webhook, room), lowest position in the events topic first. One delivery per (webhook,
-- room) is its head, attempted like any other (retried, held, leased); the others wait,
-- out of every claim, until the head ends (success or failed for good), when the next
-- lowest waiting one becomes the head, due at once.

-- The order a delivery keeps: its room (the empty string for an organization event; a long
-- room id as its SHA-256), and its event's position (partition, offset). NULL: no order.
-- `waiting`: pending behind its room's head (next_attempt_at NULL, never claimed, and not
-- held: the held index leaves it out). Catalog-only changes on the partitioned parent.
ALTER TABLE deliveries ADD COLUMN order_key text;
ALTER TABLE deliveries ADD COLUMN position_partition integer;
ALTER TABLE deliveries ADD COLUMN position_offset bigint;
ALTER TABLE deliveries ADD COLUMN waiting boolean NOT NULL DEFAULT false;

DROP INDEX deliveries_held_idx;
CREATE INDEX deliveries_held_idx ON deliveries (webhook_id, created_at, id)
    WHERE status = 'pending' AND next_attempt_at IS NULL AND NOT waiting;

-- The head of each (webhook, room) with a delivery pending: the one that may be attempted.
-- Its row lock serializes every start of the room; the row goes once nothing of the room is
-- left to send, so the table holds only the rooms in flight (rooms come and go).
CREATE TABLE order_heads (
    webhook_id          uuid NOT NULL,
    order_key           text NOT NULL,
    delivery_id         uuid,
    delivery_created_at timestamptz,
    PRIMARY KEY (webhook_id, order_key)
);

-- The waiting deliveries of each (webhook, room), lowest position first. Small: a row lives
-- only while its delivery waits. Not partitioned, so the next one is one index probe
-- whatever day its delivery was created on.
CREATE TABLE order_queue (
    webhook_id          uuid NOT NULL,
    order_key           text NOT NULL,
    position_partition  integer NOT NULL,
    position_offset     bigint NOT NULL,
    delivery_id         uuid NOT NULL,
    delivery_created_at timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, order_key, position_partition, position_offset, delivery_id)
);
CREATE UNIQUE INDEX order_queue_delivery_idx ON order_queue (delivery_id);

-- Starts the next waiting delivery of (webhook, key) when it has no head, or its head is no
-- longer pending (ended, or gone with its day's partition): that delivery becomes the head,
-- due at `at`, leased until `lease` (NULL: left to the claim). Returns it, or nothing; with
-- nothing left to start, the head row goes. Every start holds the head row's lock (taken
-- here), so starts of one room never race; a row deleted meanwhile is made again.
CREATE FUNCTION start_next(p_webhook uuid, p_key text, p_at timestamptz, p_lease timestamptz)
RETURNS TABLE (id uuid, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    cur delivery.order_heads%ROWTYPE;
    nxt delivery.order_queue%ROWTYPE;
BEGIN
    LOOP
        INSERT INTO delivery.order_heads (webhook_id, order_key) VALUES (p_webhook, p_key)
            ON CONFLICT DO NOTHING;
        SELECT * INTO cur FROM delivery.order_heads h
            WHERE h.webhook_id = p_webhook AND h.order_key = p_key FOR UPDATE;
        EXIT WHEN FOUND;
    END LOOP;
    IF cur.delivery_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM delivery.deliveries d
        WHERE d.id = cur.delivery_id AND d.created_at = cur.delivery_created_at
          AND d.status = 'pending') THEN
        RETURN;
    END IF;
    LOOP
        DELETE FROM delivery.order_queue q
        WHERE (q.webhook_id, q.order_key, q.position_partition, q.position_offset,
               q.delivery_id) = (
            SELECT w.webhook_id, w.order_key, w.position_partition, w.position_offset,
                   w.delivery_id
            FROM delivery.order_queue w
            WHERE w.webhook_id = p_webhook AND w.order_key = p_key
            ORDER BY w.position_partition, w.position_offset, w.delivery_id LIMIT 1)
        RETURNING q.* INTO nxt;
        IF NOT FOUND THEN
            DELETE FROM delivery.order_heads h
                WHERE h.webhook_id = p_webhook AND h.order_key = p_key;
            RETURN;
        END IF;
        UPDATE delivery.deliveries d
            SET waiting = false, next_attempt_at = p_at, lease_until = p_lease, updated_at = p_at
            WHERE d.id = nxt.delivery_id AND d.created_at = nxt.delivery_created_at
              AND d.status = 'pending' AND d.waiting;
        IF FOUND THEN
            UPDATE delivery.order_heads h
                SET delivery_id = nxt.delivery_id, delivery_created_at = nxt.delivery_created_at
                WHERE h.webhook_id = p_webhook AND h.order_key = p_key;
            id := nxt.delivery_id;
            created_at := nxt.delivery_created_at;
            RETURN NEXT;
            RETURN;
        END IF;
        -- Its delivery is gone or no longer waits (a redelivery took it out): the next one.
    END LOOP;
END $$;

-- Whatever ends a head (an attempt recorded, a deleted webhook's stop, a redelivery's
-- answer), the next waiting delivery of its room starts in the same transaction, due at
-- once. WHEN keeps this off every unordered delivery's update.
CREATE FUNCTION head_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM delivery.order_heads h
               WHERE h.webhook_id = NEW.webhook_id AND h.order_key = NEW.order_key
                 AND h.delivery_id = NEW.id) THEN
        PERFORM delivery.start_next(NEW.webhook_id, NEW.order_key, NEW.updated_at, NULL);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_head_ended AFTER UPDATE OF status ON deliveries
    FOR EACH ROW
    WHEN (OLD.status = 'pending' AND NEW.status <> 'pending' AND NEW.order_key IS NOT NULL)
    EXECUTE FUNCTION head_ended();
