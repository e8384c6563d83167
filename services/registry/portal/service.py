"""Portal sessions: made by an OWNER or ADMIN key (a one-time link), exchanged once for a
session token, found by the Authorizer for each request, and widened to the webhooks a
limited session creates."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from uuid import UUID

import structlog

from services.registry import keys
from services.registry.audit.models import Actor, AuditEntry
from services.registry.audit.recorder import audit_entry, safe_change
from services.registry.errors import InvalidChange, parse_id
from services.registry.portal.models import (
    PortalSession,
    PortalSessionInput,
    PortalSessionRow,
    webhook_id_list,
)

log = structlog.get_logger(__name__)

LinkRefusal = Literal["used", "expired", "unknown"]


class PortalSessions(Protocol):
    """Portal sessions, each inside its account; found by a token's digest only."""

    async def owned_webhooks(self, account_id: UUID, ids: Sequence[UUID]) -> set[UUID]:
        """Those of `ids` that are webhooks of the account."""

    async def insert(self, row: PortalSessionRow, audit: AuditEntry) -> None:
        """Store the session and its audit entry in one transaction."""

    async def exchange(
        self, link_hash: str, session_hash: str, *, now: datetime
    ) -> PortalSession | LinkRefusal:
        """Mark the link used and give its session `session_hash`, atomically: only while
        it is unused and not expired at `now`; else why not."""

    async def find(self, session_hash: str) -> PortalSession | None:
        """The exchanged session with this digest, expired or not."""

    async def add_webhook(self, session_id: UUID, webhook_id: UUID) -> None:
        """Add the webhook to a limited session's list (a session of all webhooks: nothing)."""


class LinkRefused(Exception):
    """The link cannot be exchanged: `reason` says whether it was used, expired or unknown."""

    def __init__(self, reason: LinkRefusal) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PortalLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Exchanged:
    session: PortalSession
    token: str  # shown once; only its digest is stored


def portal_url(public_url: str, link_token: str) -> str:
    """The console's portal page with the link token in the fragment: a fragment is never
    sent to a server, so the token stays out of access logs and Referer headers."""
    return f"{public_url.rstrip('/')}/console/portal#token={link_token}"


class PortalService:
    """Makes portal links, exchanges them for sessions, and finds sessions by token."""

    def __init__(
        self, sessions: PortalSessions, *, clock: Callable[[], datetime], public_url: str
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._public_url = public_url

    async def create(
        self, account_id: str, body: PortalSessionInput, *, actor: Actor
    ) -> PortalLink:
        """A one-time link; InvalidChange naming the first listed id the account has no
        webhook of (whoever has it)."""
        account = parse_id(account_id)
        ids = body.webhook_ids
        if ids:
            owned = await self._sessions.owned_webhooks(account, ids)
            for i, webhook_id in enumerate(ids):
                if webhook_id not in owned:
                    raise InvalidChange(f"webhookIds[{i}]", "no such webhook in this account")
        now = self._clock()
        token = keys.new_token(keys.PORTAL_LINK_PREFIX)
        row = PortalSessionRow(
            id=uuid.uuid4(),
            account_id=account,
            webhook_ids=None if ids is None else tuple(ids),
            read_only=body.read_only,
            link_hash=keys.hash_token(token),
            expires_at=now + timedelta(seconds=body.ttl_seconds),
            created_at=now,
            created_by=actor.key_id,
        )
        listed = webhook_id_list(None if ids is None else frozenset(ids))
        changes = [
            safe_change("webhook_ids", listed),
            safe_change("read_only", row.read_only),
            safe_change("expires_at", row.expires_at.isoformat()),
        ]
        await self._sessions.insert(
            row, audit_entry(actor, account_id, "portal_session.created", row.id, changes, now=now)
        )
        log.info("portal_session.created", account_id=account_id, session_id=str(row.id))
        return PortalLink(portal_url(self._public_url, token), row.expires_at)

    async def exchange(self, link_token: str) -> Exchanged:
        """The link's session and its token, once; LinkRefused."""
        token = keys.new_token(keys.PORTAL_SESSION_PREFIX)
        found = await self._sessions.exchange(
            keys.hash_token(link_token), keys.hash_token(token), now=self._clock()
        )
        if isinstance(found, str):
            raise LinkRefused(found)
        log.info(
            "portal_session.exchanged", account_id=str(found.account_id), session_id=str(found.id)
        )
        return Exchanged(found, token)

    async def identify(self, session_hash: str) -> PortalSession | None:
        return await self._sessions.find(session_hash)

    def live(self, session: PortalSession) -> bool:
        return session.live(self._clock())

    async def add_webhook(self, session: PortalSession, webhook_id: UUID) -> None:
        """A webhook the session created: a limited session manages it from now on."""
        if session.webhook_ids is not None:
            await self._sessions.add_webhook(session.id, webhook_id)
