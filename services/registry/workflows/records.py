"""Pure translations from stored workflows and executions to what the API shows and what
Kafka carries (`workflow:<id>` on the registry topic, without the code)."""

from __future__ import annotations

from dataclasses import asdict

from services.registry.outbox import OutboxEntry
from services.registry.workflows.models import (
    Execution,
    ExecutionRow,
    SavedBy,
    SavedByRow,
    VersionRow,
    Workflow,
    WorkflowRow,
    WorkflowVersion,
    WorkflowVersionSummary,
)
from shared.kafka import Topics, dumps
from shared.messages import WorkflowRecord, registry_key


def public_workflow(row: WorkflowRow) -> Workflow:
    return Workflow(
        id=str(row.id),
        organization_id=str(row.organization_id),
        name=row.name,
        events=list(row.events),
        room_id=row.room_id,
        enabled=row.enabled,
        language=row.language,
        version=row.version,
        code=row.code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def public_execution(row: ExecutionRow) -> Execution:
    return Execution(**{**asdict(row), "id": str(row.id), "workflow_id": str(row.workflow_id)})


def _saved_by(row: SavedByRow | None) -> SavedBy | None:
    if row is None:
        return None
    return SavedBy(
        actor=row.actor,  # type: ignore[arg-type]
        key_id=str(row.key_id) if row.key_id is not None else None,
        key_label=row.key_label,
        role=row.role,
    )


def public_version_summary(row: VersionRow, *, current: int) -> WorkflowVersionSummary:
    """`current`: the version the workflow runs now."""
    return WorkflowVersionSummary(
        workflow_id=str(row.workflow_id),
        version=row.version,
        language=row.language,  # type: ignore[arg-type]
        current=row.version == current,
        created_at=row.created_at,
        saved_by=_saved_by(row.saved_by),
    )


def public_version(row: VersionRow, *, current: int) -> WorkflowVersion:
    if row.code is None:
        raise ValueError("a version shown with its code was read without it")
    return WorkflowVersion(
        **public_version_summary(row, current=current).model_dump(), code=row.code
    )


def registry_entry(topics: Topics, row: WorkflowRow) -> OutboxEntry:
    record = WorkflowRecord(
        id=str(row.id),
        organization_id=str(row.organization_id),
        name=row.name,
        events=list(row.events),
        room_id=row.room_id,
        enabled=row.enabled,
        language=row.language,
        version=row.version,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    key = registry_key("workflow", str(row.id)).encode()
    return topics.registry, key, dumps(record.model_dump(mode="json"))


def tombstone_entry(topics: Topics, row: WorkflowRow) -> OutboxEntry:
    return topics.registry, registry_key("workflow", str(row.id)).encode(), None
