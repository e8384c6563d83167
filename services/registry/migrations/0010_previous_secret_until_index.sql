-- The sweep that erases a rotation's previous secret once its overlap has ended runs every
-- minute on every replica: it reads the few webhooks in an overlap from this index, never the
-- whole table. Only rows in an overlap are in it, so it stays small.
CREATE INDEX webhooks_previous_secret_until_idx ON webhooks (previous_secret_until)
    WHERE previous_secret_until IS NOT NULL;
