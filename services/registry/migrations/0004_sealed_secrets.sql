-- Webhook secrets are stored sealed (encrypted, shared/secrets_box.py) in secret_ciphertext,
-- as `<key id>:<Fernet token>`. Rows written before this migration keep their plain secret
-- in legacy_secret until the registry's start-up seals them and clears it
-- (services/registry/sealing.py); nothing writes legacy_secret any more.
ALTER TABLE webhooks RENAME COLUMN secret TO legacy_secret;
ALTER TABLE webhooks ALTER COLUMN legacy_secret DROP NOT NULL;
ALTER TABLE webhooks ADD COLUMN secret_ciphertext text;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_secret_kept
    CHECK (secret_ciphertext IS NOT NULL OR legacy_secret IS NOT NULL);
