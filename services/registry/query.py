"""The query parameters list routes share: `limit`, `status`, and a time window of `since`
and `until` (`cursor` is shared/pagination)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from services.registry.http import ApiError

DEFAULT_PAGE_SIZE = 50
# RFC 3339's date-time, as JSON Schema's `format: date-time` means it: an offset is required.
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
INSTANT_SCHEMA = {"type": "string", "format": "date-time"}


def page_limit(request: web.Request, *, default: int, maximum: int) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return min(default, maximum)
    # isascii: str.isdigit() also holds for '³' or '٣', which int() refuses or reads. The
    # length first: int() refuses over 4,300 digits, and no page size needs 20.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20) or not 1 <= int(raw) <= maximum:
        raise ApiError(
            400,
            "validation_error",
            f"limit: must be a whole number from 1 to {maximum}",
            [{"field": "limit", "message": f"must be from 1 to {maximum}"}],
        )
    return int(raw)


def check_status(value: str | None, *, allowed: tuple[str, ...]) -> str | None:
    """A `status` filter: None when absent, else one of `allowed` (ValueError otherwise)."""
    if value in (None, ""):
        return None
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


def status_filter(request: web.Request, allowed: tuple[str, ...]) -> str | None:
    """The request's `status` filter, or a 400 naming it."""
    try:
        return check_status(request.query.get("status"), allowed=allowed)
    except ValueError as exc:
        raise ApiError(
            400, "validation_error", f"status: {exc}", [{"field": "status", "message": str(exc)}]
        ) from exc


def check_instant(raw: str) -> datetime:
    """An RFC 3339 date-time with an offset, in UTC (ValueError otherwise)."""
    shape = "must be an RFC 3339 date-time with an offset, e.g. 2026-05-29T10:06:00Z"
    if not _DATE_TIME.fullmatch(raw):
        raise ValueError(shape)
    try:
        return datetime.fromisoformat(raw.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(shape) from None


def time_window(
    query: Mapping[str, str], problems: dict[str, str]
) -> tuple[datetime | None, datetime | None]:
    """`since` (inclusive) and `until` (exclusive), each None when absent or empty; what is
    wrong with them (a bad instant, `until` not after `since`) goes to `problems` by field."""
    window: dict[str, datetime | None] = {}
    for field in ("since", "until"):
        raw = query.get(field) or None
        try:
            window[field] = None if raw is None else check_instant(raw)
        except ValueError as exc:
            problems[field] = str(exc)
            window[field] = None
    since, until = window["since"], window["until"]
    if since is not None and until is not None and until <= since:
        problems["until"] = "must be later than since"
    return since, until


def window_filter(request: web.Request) -> tuple[datetime | None, datetime | None]:
    """The request's `since` and `until`, or a 400 naming each field at fault."""
    problems: dict[str, str] = {}
    window = time_window(request.query, problems)
    if problems:
        raise ApiError(
            400,
            "validation_error",
            "; ".join(f"{f}: {m}" for f, m in problems.items()),
            [{"field": f, "message": m} for f, m in problems.items()],
        )
    return window
