"""What the events schema keeps for ROOMHOOKS_RETENTION_DAYS only (shared/retention.py): the
event log, one partition a day on received_at (migrations/0002), each dropped whole."""

from shared.partitions import PartitionedTable
from shared.retention import RetentionPlan

PLAN = RetentionPlan("events", partitioned=(PartitionedTable("events", "events", "received_at"),))
