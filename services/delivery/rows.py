"""What the delivery service works with, apart from where it is stored: a claimed delivery
(`Job`), its webhook as the registry holds it (`StoredTarget`) and as it is sent to
(`Target`), and a finished attempt (`AttemptRow`). The service, its Protocols
(dependencies.py) and the Postgres adapter (repository.py) all speak these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.signing import PreviousSecret


@dataclass(frozen=True)
class Job:
    """A delivery this replica holds the lease of and is about to attempt."""

    id: UUID
    webhook_id: UUID
    organization_id: UUID
    event_id: str
    event: str
    payload: str
    attempts: int  # made before this one
    lease_until: datetime  # ours until then, as Postgres holds it (see `renew_lease`)
    created_at: datetime  # the partition key: with `id`, the row in one day's partition
    order_key: str | None = None  # its room in an ordered webhook's order (ordering.py)
    traceparent: str | None = None  # the trace its attempts are spans of (shared/tracing.py)

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Job:
        """From a row of `_JOB_COLUMNS`, which are its fields in their order."""
        return cls(*record)  # by position: 1.2 us a job against 3.0 by name


@dataclass(frozen=True)
class StoredTarget:
    """The webhook's row as the registry holds it now; its secret still sealed."""

    url: str
    secret_ciphertext: str | None
    legacy_secret: str | None  # a row from before sealing that no registry has sealed yet
    enabled: bool
    retry_schedule: tuple[float, ...] | None
    previous_secret_ciphertext: str | None = None  # a rotation's replaced secret...
    previous_secret_until: datetime | None = None  # ...signs until then
    headers_ciphertext: str | None = None  # the custom headers, one sealed JSON object
    send_traceparent: bool = False  # a `traceparent` header on its requests (tracing on)


@dataclass(frozen=True)
class Target:
    """Where and how to send for one webhook; the secret opened (None: it would not open,
    and `secret_error` says why), the secret a rotation replaced while it may still sign,
    and the webhook's own headers (opened: their values may be credentials)."""

    url: str
    secret: str | None
    enabled: bool
    retry_schedule: tuple[float, ...] | None
    secret_error: str | None = None
    previous_secret: PreviousSecret | None = None
    headers: tuple[tuple[str, str], ...] = ()
    send_traceparent: bool = False


@dataclass(frozen=True)
class AttemptRow:
    """One finished attempt and the delivery state it leads to."""

    delivery_id: UUID
    delivery_created_at: datetime  # its delivery's created_at: the day both live in
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None
    status: str
    next_attempt_at: datetime | None
    # As sent, signatures and the webhook's own values masked (sent_headers.py); None: no
    # request was made (no secret to sign with).
    request_headers: dict[str, str] | None = None
    # Its delivery keeps a room's order: ending it starts the room's next one.
    ordered: bool = False
