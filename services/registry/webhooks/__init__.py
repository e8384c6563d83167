"""Webhooks: CRUD for one account at a time, each change announced through the outbox."""
