"""workflow_runner service: customer JS/TS run on events in a Deno sandbox, executions recorded."""

# DESIGN.md names the schema after what it holds, not after the service.
SCHEMA = "workflow"
