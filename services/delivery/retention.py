"""What the delivery schema keeps for ROOMHOOKS_RETENTION_DAYS only (shared/retention.py).

- `deliveries` and `delivery_attempts`: day partitions, dropped whole; an attempt lives in
  its delivery's day (`delivery_created_at`), so both go together.
- `attempt_stats`: batches on `bucket_start` (the stats windows reach back 7 days at most).
- `recoveries`: finished jobs, in batches on `updated_at`; a running job is kept however old.
  Their `recovery_items` go with them (ON DELETE CASCADE).
- `webhook_health` is kept: one row per webhook ever attempted, and its last success is what
  auto-disable and /stats need whenever it was.
"""

from shared.partitions import ExpiringTable, PartitionedTable
from shared.retention import RetentionPlan

# A webhook's log is read by webhook and account, one account's webhooks only.
DELIVERIES = PartitionedTable(
    "delivery", "deliveries", "created_at", dependent=("webhook_id", "organization_id")
)
ATTEMPTS = PartitionedTable("delivery", "delivery_attempts", "delivery_created_at")

PLAN = RetentionPlan(
    "delivery",
    partitioned=(DELIVERIES, ATTEMPTS),
    expiring=(
        ExpiringTable("delivery", "attempt_stats", "bucket_start"),
        ExpiringTable("delivery", "recoveries", "updated_at", keep_if="status = 'running'"),
    ),
)
