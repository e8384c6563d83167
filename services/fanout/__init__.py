"""fanout: matches each event to the webhooks of its organization, event name and room.

Reads `<ns>.registry` into an in-memory index, consumes `<ns>.events` (group `<ns>-fanout`)
and emits delivery requests to `<ns>.deliveries`; rejects go to `<ns>.events.dlq`.
Run it with `python -m services.fanout`; in-process with `services.fanout.app.Fanout`.
"""
