"""The commands a service runs as its schema's owner rather than as itself:

- `python -m services.<name> migrate`: the schema's migrations, day partitions and grants
  (the migrate step of deploy/README.md);
- `python -m services.<name> retention [--every SECONDS]`: one retention run of the schema,
  or one every so often (a Kubernetes CronJob, a compose service).
"""

from __future__ import annotations

from shared.retention import RetentionPlan
from shared.settings import PostgresSettings

OWNER_COMMANDS = ("migrate", "retention")


def run_owner_command(
    args: list[str], settings: PostgresSettings, *, package: str, plan: RetentionPlan
) -> int:
    """Run `args` (its first word one of OWNER_COMMANDS); the exit status."""
    if args[0] == "migrate" and len(args) == 1:
        from shared.migrate import migrate_main

        return migrate_main(settings, schema=plan.schema, package=package, plan=plan)
    if args[0] == "retention":
        from shared.retention import retention_main

        return retention_main(settings, plan, args[1:])
    return 2
