"""Every topic and consumer-group name, and the wire format of every value.

Names derive from one namespace (a setting), so stacks can share a broker. Values are
compact UTF-8 JSON with `content-type: application/json`; their models are shared.messages
and shared.events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.settings import KafkaSettings

JSON_HEADERS: list[tuple[str, bytes]] = [("content-type", b"application/json")]


@dataclass(frozen=True)
class Topics:
    """Every topic and consumer-group name, derived from one namespace."""

    namespace: str = "roomhooks"

    @property
    def events(self) -> str:
        return f"{self.namespace}.events"

    @property
    def events_dlq(self) -> str:
        return f"{self.namespace}.events.dlq"

    @property
    def registry(self) -> str:
        return f"{self.namespace}.registry"

    @property
    def registry_commands(self) -> str:
        """Orders to the registry from other services (e.g. disable a webhook after a 410)."""
        return f"{self.namespace}.registry.commands"

    @property
    def deliveries(self) -> str:
        return f"{self.namespace}.deliveries"

    @property
    def deliveries_dlq(self) -> str:
        return self.dlq_of(self.deliveries)

    @property
    def workflow_runs(self) -> str:
        return f"{self.namespace}.workflow-runs"

    @property
    def workflow_runs_dlq(self) -> str:
        return self.dlq_of(self.workflow_runs)

    @staticmethod
    def dlq_of(topic: str) -> str:
        """Where the malformed messages of `topic` go, with their reason."""
        return f"{topic}.dlq"

    @property
    def room_state(self) -> str:
        return f"{self.namespace}.room-state"

    def group(self, service: str) -> str:
        return f"{self.namespace}-{service}"

    def all(self) -> dict[str, dict[str, str]]:
        """Topic name -> topic configs, as ARCHITECTURE.md lays them out."""
        compacted = {"cleanup.policy": "compact"}
        # The broker stamps each event as it appends it: fanout stamps all it makes of an event
        # with that timestamp (services/fanout/stamps.py), so no producer's clock is trusted.
        # The dev broker keeps the setting but stamps with the producer's time all the same.
        broker_stamped = {"message.timestamp.type": "LogAppendTime"}
        return {
            self.events: broker_stamped,
            self.events_dlq: {},
            self.registry: compacted,
            self.registry_commands: {},
            self.deliveries: {},
            self.deliveries_dlq: {},
            self.workflow_runs: {},
            self.workflow_runs_dlq: {},
            self.room_state: compacted,
        }

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> Topics:
        return cls(namespace=settings.topic_namespace)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the wire format of every topic."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(raw: bytes) -> Any:
    return json.loads(raw)
