"""What the registry's use cases refuse with; the HTTP layer gives each its answer."""

from __future__ import annotations

from uuid import UUID


class NotFound(LookupError):
    """The id names nothing inside the caller's account."""


class InvalidChange(ValueError):
    """A change that is invalid only in combination with the stored webhook."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QuotaExceeded(Exception):
    """The account already holds as many of these as its quota allows."""

    def __init__(self, what: str, quota: int) -> None:
        super().__init__(
            f"this account holds {quota:,} {what}, its quota: delete one to create another"
        )
        self.what = what
        self.quota = quota


def parse_id(value: str) -> UUID:
    """An id from a path; one that is no UUID names nothing (NotFound)."""
    try:
        return UUID(value)
    except ValueError as exc:
        raise NotFound(value) from exc
