"""The query parameters list routes share: `limit` and `status` (`cursor` is shared/pagination)."""

from __future__ import annotations

from aiohttp import web

from services.registry.http import ApiError

DEFAULT_PAGE_SIZE = 50


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
