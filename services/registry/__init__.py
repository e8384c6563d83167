"""registry service: webhook CRUD API, API keys, and the outbox to roomhooks.registry."""
