"""fanout service: arrives with its issue (see DESIGN.md)."""
