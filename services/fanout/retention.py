"""What the events schema keeps for ROOMHOOKS_RETENTION_DAYS only (shared/retention.py)."""

from shared.retention import RetentionPlan

PLAN = RetentionPlan("events")
