"""workflow_runner service: customer JS/TS run on events in a Deno sandbox, executions recorded."""

# The schema is named after what it holds, not after the service (ARCHITECTURE.md).
SCHEMA = "workflow"
