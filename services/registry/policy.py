"""Pure decisions of the registry: who may do what, and which webhook settings are acceptable."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from enum import StrEnum
from urllib.parse import urlsplit

from shared.events import CATALOG, Scope

MAX_URL_LENGTH = 2048


class Role(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


WRITER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Access(StrEnum):
    ALLOWED = "allowed"
    OTHER_ACCOUNT = "other_account"
    READ_ONLY_ROLE = "read_only_role"


def decide_access(*, key_account: str, role: Role, path_account: str, write: bool) -> Access:
    """A key reaches its own account only; only OWNER and ADMIN write (004)."""
    if key_account.lower() != path_account.lower():
        return Access.OTHER_ACCOUNT
    if write and role not in WRITER_ROLES:
        return Access.READ_ONLY_ROLE
    return Access.ALLOWED


def check_webhook_url(url: str, *, http_hosts: frozenset[str]) -> str:
    """Return the URL when acceptable, else raise ValueError saying why.

    https is required, except for hosts the operator allows (localhost in dev). Loopback,
    private and link-local literal addresses are refused unless allowed the same way; names
    that resolve to such addresses are caught again at send time by the delivery SSRF guard.
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ValueError("must not contain whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        shown = parts.scheme or "none"
        raise ValueError(f"must be an absolute https:// URL (scheme {shown!r} is not allowed)")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("must be an absolute URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    allowed_host = host in http_hosts
    if parts.scheme == "http" and not allowed_host:
        raise ValueError("must use https (http is allowed only for hosts the operator allows)")
    if not allowed_host and _is_internal_host(host):
        raise ValueError(f"host {host!r} is a loopback, private or link-local address")
    return url


def _is_internal_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


MAX_RETRIES = 10
MAX_RETRY_DELAY_S = 86_400


def check_schedule(delays: list[int] | None) -> list[int] | None:
    """A per-webhook retry schedule: whole seconds, each 1 s to 24 h, at most 10 retries."""
    if delays is None:
        return None
    if len(delays) > MAX_RETRIES:
        raise ValueError(f"at most {MAX_RETRIES} retries")
    if any(not 1 <= d <= MAX_RETRY_DELAY_S for d in delays):
        raise ValueError(f"each delay must be from 1 to {MAX_RETRY_DELAY_S} seconds")
    return delays


def check_events(events: Iterable[str]) -> list[str]:
    """Non-empty, unique names from the catalog."""
    names = list(events)
    if not names:
        raise ValueError("at least one event is required")
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})
    if duplicates:
        raise ValueError(f"duplicate events: {', '.join(duplicates)}")
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise ValueError(
            f"unknown events: {', '.join(unknown)} (GET /v1/event-types lists the known ones)"
        )
    return names


def check_room_scope(events: Iterable[str], *, room_id: str | None) -> None:
    """Organization events happen in no room: a room-scoped webhook would never get them."""
    if room_id is None:
        return
    org_events = [n for n in events if n in CATALOG and CATALOG[n].scope is Scope.ORGANIZATION]
    if org_events:
        raise ValueError("organization events cannot be scoped to a room: " + ", ".join(org_events))
