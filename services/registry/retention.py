"""What the registry schema keeps for ROOMHOOKS_RETENTION_DAYS only (shared/retention.py).

History expires: the audit log, recovery jobs once the delivery service no longer runs them
(a job still running stays, whatever its age), and customer portal sessions expired that
long ago. State stays: accounts, API keys,
webhooks, workflows and their code versions. The outbox holds only changes not yet
published (the relay deletes each row once the broker has it), so none of it expires.
"""

from shared.partitions import ExpiringTable
from shared.retention import RetentionPlan

AUDIT_LOG = ExpiringTable("registry", "audit_log", "created_at")
# A job's progress is the delivery service's (delivery.recoveries): one it is running stays.
JOB_RUNNING = (
    "EXISTS (SELECT 1 FROM delivery.recoveries r WHERE r.job_id = jobs.id AND r.status = 'running')"
)
JOBS = ExpiringTable("registry", "jobs", "created_at", keep_if=JOB_RUNNING)

# A portal session is of no use once expired: it goes when it has been so for the period.
PORTAL_SESSIONS = ExpiringTable("registry", "portal_sessions", "expires_at")

PLAN = RetentionPlan("registry", expiring=(AUDIT_LOG, JOBS, PORTAL_SESSIONS))
