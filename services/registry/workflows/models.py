"""Workflows and their executions as stored (rows) and as the HTTP API reads and answers them.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from services.registry.bodies import (
    EVENTS_FIELD,
    EVENTS_SCHEMA,
    ROOM_ID_FIELD,
    EventName,
    StrictBody,
)
from services.registry.policy import check_events, check_room_scope
from shared.events import format_timestamp

EXECUTION_STATUSES = ("running", "success", "error", "timeout")


@dataclass(frozen=True)
class WorkflowRow:
    """A workflow with the code of its current version."""

    id: UUID
    organization_id: UUID
    name: str
    events: list[str]
    room_id: str | None
    enabled: bool
    language: str
    version: int
    revision: int
    created_at: datetime
    updated_at: datetime
    code: str


@dataclass(frozen=True)
class ExecutionRow:
    """One run of a workflow, as the workflow runner records it (never written here)."""

    id: UUID
    workflow_id: UUID
    version: int
    event_id: str
    event: str
    status: str
    started_at: datetime | None
    duration_ms: int | None
    result: Any
    error: dict[str, Any] | None
    logs: list[dict[str, Any]]
    created_at: datetime
    fetches: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class SavedByRow:
    """Who saved a version, from the audit entry of its save (None where none is kept)."""

    actor: str
    key_id: UUID | None
    key_label: str | None
    role: str | None


@dataclass(frozen=True)
class VersionRow:
    """One stored version of a workflow; `code` is None where the read left it out."""

    workflow_id: UUID
    version: int
    language: str
    created_at: datetime
    saved_by: SavedByRow | None
    code: str | None = None


DEFAULT_CODE_MAX_BYTES = 256 * 1024
CODE_DESCRIPTION = (
    "An ES module whose default export is `async function(event, bindings)`; at most the "
    "deployment's code size (256 KiB of UTF-8 by default)."
)


def _check_code_size(code: str, info: ValidationInfo) -> str:
    limit = (info.context or {}).get("code_max_bytes", DEFAULT_CODE_MAX_BYTES)
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ValueError(f"must be at most {limit:,} bytes of UTF-8 (it is {size:,})")
    return code


class WorkflowInput(StrictBody):
    """POST body: a workflow as the CollabKit webhooks guide creates it."""

    name: str = Field(min_length=1, max_length=255)
    events: list[EventName] = EVENTS_FIELD
    code: str = Field(min_length=1, description=CODE_DESCRIPTION)
    language: Literal["js", "ts"] = "js"
    room_id: str | None = ROOM_ID_FIELD
    enabled: bool = True

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return check_events(value)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str, info: ValidationInfo) -> str:
        return _check_code_size(value, info)

    @model_validator(mode="after")
    def _scope(self) -> WorkflowInput:
        check_room_scope(self.events, room_id=self.room_id)
        return self


class WorkflowPatch(StrictBody):
    """PATCH body: only the fields present change; a new `code` or `language` is a new version."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    events: list[EventName] | None = Field(
        default=None, max_length=100, json_schema_extra=EVENTS_SCHEMA
    )
    code: str | None = Field(default=None, min_length=1, description=CODE_DESCRIPTION)
    language: Literal["js", "ts"] | None = None
    room_id: str | None = ROOM_ID_FIELD
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("must not be null")
        return check_events(value)

    @field_validator("name", "code", "language", "enabled")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("must not be null")
        if info.field_name == "code":
            return _check_code_size(value, info)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WorkflowPatch:
        if not self.model_fields_set:
            raise ValueError(
                "at least one of name, events, code, language, roomId, enabled is required"
            )
        return self


class Workflow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    organization_id: str
    name: str
    events: list[str]
    room_id: str | None
    enabled: bool
    language: Literal["js", "ts"]
    version: int
    code: str
    created_at: datetime
    updated_at: datetime

    @field_serializer("created_at", "updated_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return format_timestamp(value)


class ExecutionFetch(BaseModel):
    """One `fetch` the code made, in the order made (those past the per-run limit, or with a
    request the sandbox refused to send, are not among them)."""

    method: str
    url: str = Field(description="As the code gave it, at most 2,048 characters.")
    status: int | None = Field(
        description="The status answered; null when nothing answered (refused by the address"
        " guard, timed out, broken off: see `error`)."
    )
    duration_ms: int
    error: str | None


class Execution(BaseModel):
    id: str
    workflow_id: str
    version: int
    event_id: str
    event: str
    status: Literal["running", "success", "error", "timeout"]
    started_at: datetime | None
    duration_ms: int | None
    result: Any = None
    error: dict[str, Any] | None
    logs: list[dict[str, Any]]
    created_at: datetime
    fetches: list[ExecutionFetch] | None = Field(
        description="The code's fetches, in order; null for an execution recorded before they"
        " were kept."
    )

    @field_serializer("started_at", "created_at", when_used="json")
    def _timestamps(self, value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None


class SavedBy(BaseModel):
    """Who saved a version, as the audit log recorded it."""

    actor: Literal["key", "system"] = Field(
        description="`key`: saved through the API with `key_id`; `system`: by the platform."
    )
    key_id: str | None = Field(description="The API key's id (never the key); null: system.")
    key_label: str | None
    role: str | None = Field(description="The key's role when it saved the version.")


SAVED_BY_DESCRIPTION = (
    "Who saved it, from the audit log; null once its audit entry has expired (or for a"
    " version saved before the audit log existed)."
)


class WorkflowVersionSummary(BaseModel):
    """A version as the list shows it: never its code."""

    workflow_id: str
    version: int
    language: Literal["js", "ts"]
    current: bool = Field(description="True for the version the workflow runs now.")
    created_at: datetime = Field(description="When it was saved.")
    saved_by: SavedBy | None = Field(description=SAVED_BY_DESCRIPTION)

    @field_serializer("created_at", when_used="json")
    def _timestamp(self, value: datetime) -> str:
        return format_timestamp(value)


class WorkflowVersion(WorkflowVersionSummary):
    """One version with its code."""

    code: str


class WorkflowData(BaseModel):
    workflow: Workflow


class WorkflowListData(BaseModel):
    workflows: list[Workflow]
    next_cursor: str | None


class ExecutionData(BaseModel):
    execution: Execution


class ExecutionListData(BaseModel):
    executions: list[Execution]
    next_cursor: str | None


class WorkflowVersionListData(BaseModel):
    versions: list[WorkflowVersionSummary]
    next_cursor: str | None


class WorkflowVersionData(BaseModel):
    version: WorkflowVersion
