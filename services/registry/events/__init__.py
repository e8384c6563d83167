"""The account's event log as the registry serves it: what fanout recorded, and whom it reached."""
