"""Opaque keyset cursors: (created_at, id) of the last row of a page, newest first."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


class InvalidCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("is not a cursor this API returned") from exc
    if created_at.tzinfo is None or not row_id:
        raise InvalidCursor("is not a cursor this API returned")
    try:
        # An instant past year 1 or 9999 once in UTC: Postgres would never get it.
        created_at = created_at.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidCursor("is not a cursor this API returned") from exc
    return created_at, row_id


def after_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """Where a page starts: after the (created_at, id) a cursor names; None for the first."""
    if not cursor:
        return None
    created_at, row_id = decode_cursor(cursor)
    try:
        return created_at, UUID(row_id)
    except ValueError as exc:
        raise InvalidCursor("is not a cursor this API returned") from exc


def cut_page(
    rows: Sequence[T], limit: int, key: Callable[[T], tuple[datetime, Any]]
) -> tuple[list[T], str | None]:
    """Rows fetched with `LIMIT limit + 1` -> the page, and the cursor of the next one."""
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    created_at, row_id = key(page[-1])
    return page, encode_cursor(created_at, str(row_id))
