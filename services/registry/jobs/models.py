"""Jobs as stored (JobRow; Progress, the delivery service's, read only here) and as the HTTP API
reads and answers them; and the pure checks and translations between the two.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, Field, field_serializer

from services.registry.bodies import StrictBody
from services.registry.errors import InvalidChange
from shared.events import format_timestamp

# At most this many recovery jobs of one account may be queued or running at once; a job
# still queued (not begun by the delivery service) after QUEUED_COUNTS_FOR no longer counts.
OPEN_JOBS_MAX = 10
QUEUED_COUNTS_FOR = timedelta(hours=1)

# RFC 3339's date-time: a full date, a full time and an offset (`Z` or `+hh:mm`).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339(value: Any) -> Any:
    """An RFC 3339 date-time string as an aware datetime in UTC (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2030-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"must be a real date and time ({exc})") from None


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]


class TooManyJobs(Exception):
    """The account already has as many jobs queued or running as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this account has {limit} recovery jobs queued or running, the most it may:"
            " wait for one to end (GET .../jobs/{jobId})"
        )


class RecoverInput(StrictBody):
    """POST .../recover: the window of the webhook's failed deliveries to send again."""

    since: Rfc3339 = Field(
        description="RFC 3339, in the past: deliveries created at or after it are sent again."
    )
    until: Rfc3339 | None = Field(
        default=None,
        description="RFC 3339, later than `since` and not in the future: deliveries created "
        "before it; null or absent: now.",
    )


def recovery_window(
    since: datetime, until: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until) checked against `now`; InvalidChange names the field at fault."""
    if since >= now:
        raise InvalidChange("since", "must be in the past")
    if until is None:
        return since, now
    if until > now:
        raise InvalidChange("until", "must not be in the future")
    if until <= since:
        raise InvalidChange("until", "must be later than since")
    return since, until


@dataclass(frozen=True)
class JobRow:
    id: UUID
    organization_id: UUID
    kind: str
    webhook_id: UUID
    since: datetime
    until: datetime
    total: int  # the failed deliveries of the window when it was ordered
    created_at: datetime


@dataclass(frozen=True)
class Progress:
    """The delivery service's row of a recovery job (delivery.recoveries)."""

    status: str  # running, done, failed
    marked: int  # deliveries made due so far
    done: int  # of those, attempted since
    exhausted: bool  # every failed delivery of the window marked
    error: str | None
    updated_at: datetime


class Job(BaseModel):
    """A background job of the account, and how far it has come."""

    id: str
    kind: Literal["recover"]
    webhook_id: str
    status: Literal["queued", "running", "done", "failed"] = Field(
        description="queued: not begun yet; running; done: every delivery of the window "
        "attempted again; failed: stopped, `error` says why (its webhook was deleted)."
    )
    total: int = Field(
        description="Deliveries the job sends again: the failed ones of the window, counted "
        "when it was ordered; exact once every one of them has been made due."
    )
    done: int = Field(description="Of those, the deliveries attempted since the job began.")
    since: datetime
    until: datetime
    error: str | None
    created_at: datetime
    updated_at: datetime

    @field_serializer("since", "until", "created_at", "updated_at", when_used="json")
    def _timestamps(self, value: datetime) -> str:
        return format_timestamp(value)


class JobData(BaseModel):
    job: Job


def public_job(row: JobRow, progress: Progress | None) -> Job:
    """The job as the API shows it: queued until the delivery service has begun it."""
    fields: dict[str, Any] = {
        "id": str(row.id),
        "kind": row.kind,
        "webhook_id": str(row.webhook_id),
        "since": row.since,
        "until": row.until,
        "created_at": row.created_at,
    }
    if progress is None:
        return Job(
            **fields,
            status="queued",
            total=row.total,
            done=0,
            error=None,
            updated_at=row.created_at,
        )
    total = progress.marked if progress.exhausted else max(row.total, progress.marked)
    return Job(
        **fields,
        status=progress.status,
        total=total,
        done=progress.done,
        error=progress.error,
        updated_at=progress.updated_at,
    )
