"""Audit entries: who (Actor) did what (action) to which target, with the fields it changed;
as stored (AuditEntry) and as the HTTP API answers them (AuditRecord).

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from shared.events import format_timestamp


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API key (its id, label and role; never the key) in an account,
    a portal session (`session_id`; `key_id` the key that made it), or the platform itself
    (`kind` system: no key)."""

    kind: Literal["key", "portal", "system"]
    account_id: str
    key_id: UUID | None = None
    label: str | None = None
    role: str | None = None
    session_id: UUID | None = None

    @classmethod
    def system(cls, account_id: str) -> Actor:
        return cls("system", account_id)


@dataclass(frozen=True)
class AuditEntry:
    """One audited change; `changes` is already made safe (audit/recorder.py)."""

    id: UUID
    account_id: UUID
    created_at: datetime
    actor: Actor
    action: str
    target_id: str | None
    changes: list[dict[str, Any]]


class FieldChange(BaseModel):
    """A field the change set, and its new value when harmless (custom header values as
    `****`)."""

    model_config = ConfigDict(frozen=True)

    field: str
    value: Any = None
    hidden: bool = Field(
        default=False, description="True: the value is not copied (a secret, a workflow's code)."
    )


class AuditRecord(BaseModel):
    """One change to the account: when, by whom, what, to which target."""

    model_config = ConfigDict(frozen=True)

    id: str
    account_id: str
    created_at: datetime
    actor: Literal["key", "portal", "system"] = Field(
        description="`key`: made through the API with `key_id`; `portal`: through the customer"
        " portal session `portal_session_id` (made by the key `key_id`); `system`: by the"
        " platform."
    )
    key_id: str | None = Field(description="The API key's id (never the key); null: system.")
    portal_session_id: str | None = Field(
        default=None, description="The portal session that made the change; null: none."
    )
    key_label: str | None
    role: str | None = Field(description="The key's role when it made the change.")
    action: str = Field(description="What was done, e.g. `webhook.updated`, `api_key.revoked`.")
    target_id: str | None = Field(description="The webhook, workflow, key or delivery changed.")
    changes: list[FieldChange]

    @field_serializer("created_at", when_used="json")
    def _timestamp(self, value: datetime) -> str:
        return format_timestamp(value)

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditRecord:
        actor = entry.actor
        return cls(
            id=str(entry.id),
            account_id=str(entry.account_id),
            created_at=entry.created_at,
            actor=actor.kind,
            key_id=str(actor.key_id) if actor.key_id is not None else None,
            portal_session_id=str(actor.session_id) if actor.session_id is not None else None,
            key_label=actor.label,
            role=actor.role,
            action=entry.action,
            target_id=entry.target_id,
            changes=[FieldChange(**c) for c in entry.changes],
        )


class AuditListData(BaseModel):
    entries: list[AuditRecord]
    next_cursor: str | None
