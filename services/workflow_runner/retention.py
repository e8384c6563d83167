"""What the workflow schema keeps for ROOMHOOKS_RETENTION_DAYS only (shared/retention.py): the
executions, one partition a day on created_at (migrations/0002), each dropped whole. The
projection (rooms, room_users, kv_entries, files) is current state, not history: it stays."""

from shared.partitions import PartitionedTable
from shared.retention import RetentionPlan

# A workflow's log is read by workflow and account, one account's workflows only.
EXECUTIONS = PartitionedTable(
    "workflow", "executions", "created_at", dependent=("workflow_id", "organization_id")
)
PLAN = RetentionPlan("workflow", partitioned=(EXECUTIONS,))
