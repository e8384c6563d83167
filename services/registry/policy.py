"""Pure decisions of the registry: who may do what, and which webhook settings are acceptable."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from enum import StrEnum
from urllib.parse import urlsplit
from uuid import UUID

from yarl import URL

from shared.events import CATALOG, Scope
from shared.ssrf import AddressPolicy, host_address, is_canonical_ipv4

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
    NOT_A_PORTAL_ROUTE = "not_a_portal_route"
    READ_ONLY_SESSION = "read_only_session"
    OTHER_WEBHOOK = "other_webhook"  # answered as a webhook of another account: 404


def decide_access(*, key_account: str, role: Role, path_account: str, write: bool) -> Access:
    """A key reaches its own account only; only OWNER and ADMIN write."""
    if key_account.lower() != path_account.lower():
        return Access.OTHER_ACCOUNT
    if write and role not in WRITER_ROLES:
        return Access.READ_ONLY_ROLE
    return Access.ALLOWED


def decide_portal_access(
    *,
    session_account: UUID,
    webhook_ids: Collection[UUID] | None,
    read_only: bool,
    portal_route: bool,
    path_account: str | None,
    path_webhook: str | None,
    write: bool,
) -> Access:
    """A portal session reaches only the routes marked for it, in its own account, and only
    its webhooks (`webhook_ids` None: all of them); a read-only one writes nothing. A webhook
    out of its reach is answered as another account's would be (404), so a session learns
    nothing of the account's other webhooks, not even whether an id is one of them."""
    if not portal_route:
        return Access.NOT_A_PORTAL_ROUTE
    if path_account is not None and path_account.lower() != str(session_account):
        return Access.OTHER_ACCOUNT
    if path_webhook is not None and webhook_ids is not None:
        try:
            reached = UUID(path_webhook) in webhook_ids
        except ValueError:
            reached = False
        if not reached:
            return Access.OTHER_WEBHOOK
    if write and read_only:
        return Access.READ_ONLY_SESSION
    return Access.ALLOWED


# Names that only a private resolver answers: RFC 6761 (localhost), mDNS (local, RFC 6762),
# home.arpa (RFC 8375), internal (reserved by ICANN for private use; GCP's metadata server is
# metadata.google.internal), and the private suffixes of RFC 6762 appendix G. None is
# delegated in the public DNS, so no public endpoint can be named by one.
INTERNAL_SUFFIXES = (
    "localhost", "localdomain", "local", "internal", "home.arpa",
    "intranet", "private", "corp", "home", "lan",
)  # fmt: skip
PUBLIC_ONLY = AddressPolicy()  # no loopback, no operator networks: the production guard


def check_webhook_url(url: str, *, http_hosts: frozenset[str]) -> str:
    """Return the URL when acceptable, else raise ValueError saying why.

    https is required, except for hosts the operator allows (localhost in dev). The host
    must be able to reach a public address: an address the SSRF guard refuses, in any
    spelling a resolver reads (`0x7f.1` is 127.0.0.1), and a name only a private resolver
    answers are refused unless allowed the same way.

    Other names are not resolved here, on purpose: the answer proves nothing about the
    address delivery will connect to later (DNS can change, and rebinding is the attack),
    so the delivery SSRF guard checks every resolved address at send time, always; and a
    registry that resolved names on request would tell any tenant which internal names
    exist and hold the API on DNS that may be slow or not yet published.
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ValueError("must not contain whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        shown = parts.scheme or "none"
        raise ValueError(f"must be an absolute https:// URL (scheme {shown!r} is not allowed)")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    host = _delivery_host(url)
    if not host or not parts.hostname:
        raise ValueError("must be an absolute URL with a host")
    allowed_host = host in http_hosts
    # The host first: `http://10.0.0.1` is refused for its private address, which https
    # would not change, rather than for its scheme.
    problem = None if allowed_host else _host_problem(host)
    if problem is not None:
        raise ValueError(problem)
    if parts.scheme == "http" and not allowed_host:
        raise ValueError("must use https (http is allowed only for hosts the operator allows)")
    return url


def _delivery_host(url: str) -> str:
    """The host as delivery will see it: yarl (under aiohttp) maps full-width digits and
    other Unicode forms that urlsplit leaves alone (`127。0。0。1` is 127.0.0.1)."""
    try:
        return (URL(url).raw_host or "").lower()
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from exc
    except Exception as exc:  # yarl trips on some malformed hosts (IndexError)
        raise ValueError("is not a valid URL") from exc


def _host_problem(host: str) -> str | None:
    """Why a webhook may not name this host (None: it may, the send-time guard decides)."""
    try:
        address = host_address(host)
    except ValueError as exc:
        return str(exc)
    if address is not None:
        refusal = PUBLIC_ONLY.host_refusal(host)
        if refusal is not None:
            return f"must reach a public address: {refusal}"
        if isinstance(address, ipaddress.IPv4Address) and not is_canonical_ipv4(host):
            return f"{host} is {address} in an unusual spelling: write it as {address}"
        return None
    name = host.rstrip(".")
    if "." not in name:
        return f"must reach a public address: {host} is a single-label name (local only)"
    suffix = next((s for s in INTERNAL_SUFFIXES if name == s or name.endswith("." + s)), None)
    if suffix is not None:
        return (
            f"must reach a public address: {host} is a name under .{suffix}, which only a "
            "private resolver answers"
        )
    return None


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


def check_storable_text(value: object) -> object:
    """Postgres text cannot hold NUL: refuse it here as a 400 naming the field, not as a
    database error (a 500) when the row is written. (Lone surrogates pydantic refuses itself.)"""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value
