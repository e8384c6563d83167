"""workflow_runner service: arrives with its issue (see DESIGN.md)."""
