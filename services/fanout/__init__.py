"""fanout: matches each event to the webhooks and workflows of its organization, event name
and room.

Reads `<ns>.registry` into in-memory indexes, consumes `<ns>.events` (group `<ns>-fanout`)
and emits delivery requests to `<ns>.deliveries` and workflow run requests to
`<ns>.workflow-runs`; rejects go to `<ns>.events.dlq`.
Run it with `python -m services.fanout`; in-process with `services.fanout.app.Fanout`.
"""

# The schema is named after what it holds, not after the service (ARCHITECTURE.md).
SCHEMA = "events"
