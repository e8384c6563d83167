"""Messages other services read from `roomhooks.registry`.

The registry publishes the public record of every webhook under key `webhook:<id>` (no
secret), and a tombstone (null value) when it is deleted. The topic is compacted: the last
record per key is the truth. Consumers are at-least-once and must drop a record whose
`revision` is lower than one they already hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


def registry_key(kind: Literal["webhook", "workflow"], record_id: str) -> str:
    return f"{kind}:{record_id}"


def parse_registry_key(key: str) -> tuple[str, str]:
    kind, _, record_id = key.partition(":")
    if not record_id:
        raise ValueError(f"not a registry key: {key!r}")
    return kind, record_id


class WebhookRecord(BaseModel):
    """`WebhookRegistered`: the current public state of one webhook."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["webhook"] = "webhook"
    id: str
    organization_id: str
    name: str | None
    url: str
    events: list[str]
    room_id: str | None
    enabled: bool
    disabled_reason: str | None = None
    revision: int
    created_at: datetime
    updated_at: datetime
