"""The one place an audit entry is made safe: `changed_fields` is pure, and decides which
fields a change set and what of their values may be kept (never a secret, header values
masked, a workflow's code not copied)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.registry.audit.models import Actor, AuditEntry

MASK = "****"
# Never copied, whatever their value: only that they changed is kept.
HIDDEN_FIELDS = frozenset({"secret", "previous_secret", "key", "token", "code"})
# {name: value} maps whose values may hold credentials: names kept, each value masked.
MASKED_MAPS = frozenset({"headers"})
# Bookkeeping every change moves, or the target's own identity: not a change of its own.
UNRECORDED = frozenset(
    {"id", "organization_id", "account_id", "created_at", "updated_at", "last_used_at"}
)

Fields = Mapping[str, Any]


def changed_fields(before: Fields | None, after: Fields) -> list[dict[str, Any]]:
    """Each field of `after` whose value differs from `before` (every field set, when there
    was no `before`), in `after`'s order, as {field, value} made safe."""
    changes = []
    for name, value in after.items():
        if name in UNRECORDED:
            continue
        if before is not None and name in before and before[name] == value:
            continue
        if before is None and value in (None, [], {}):
            continue  # a new target's unset field
        changes.append(safe_change(name, value))
    return changes


def safe_change(name: str, value: Any) -> dict[str, Any]:
    """{field, value} as it may be stored and shown to the account's OWNER and ADMIN keys."""
    if name in HIDDEN_FIELDS:
        return {"field": name, "hidden": True}
    if name in MASKED_MAPS and isinstance(value, Mapping):
        return {"field": name, "value": dict.fromkeys(value, MASK)}
    return {"field": name, "value": value}


def audit_entry(
    actor: Actor | None,
    account_id: str,
    action: str,
    target_id: object | None,
    changes: list[dict[str, Any]],
    *,
    now: datetime,
) -> AuditEntry:
    """An entry to write in the transaction of the change it records; no actor: the
    platform made the change."""
    return AuditEntry(
        id=uuid.uuid4(),
        account_id=uuid.UUID(account_id),
        created_at=now,
        actor=actor or Actor.system(account_id),
        action=action,
        target_id=str(target_id) if target_id is not None else None,
        changes=changes,
    )
