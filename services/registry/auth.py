"""Who is calling, and may they do this to this account? 401 and 403 decided here."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from aiohttp import web

from services.registry.accounts.models import ApiKey
from services.registry.accounts.service import AccountService
from services.registry.audit.models import Actor
from services.registry.errors import NotFound
from services.registry.http import RATE_LIMIT, ApiError
from services.registry.keys import PORTAL_SESSION_PREFIX, bearer_token, hash_token
from services.registry.policy import (
    WRITER_ROLES,
    Access,
    Role,
    decide_access,
    decide_portal_access,
)
from services.registry.portal.models import PortalSession
from services.registry.portal.service import PortalService
from services.registry.rate_limits import MAX_NAMES, Buckets, Verdict
from services.registry.route_table import ROUTE
from services.registry.settings import RegistrySettings

_DENIED = {
    Access.OTHER_ACCOUNT: "this API key belongs to another account",
    Access.READ_ONLY_ROLE: "only OWNER and ADMIN keys may make changes",
}
PORTAL_ONLY = "portal sessions may manage webhooks only"
_PORTAL_DENIED = {
    Access.NOT_A_PORTAL_ROUTE: PORTAL_ONLY,
    Access.OTHER_ACCOUNT: "this portal session belongs to another account",
    Access.READ_ONLY_SESSION: "this portal session is read-only",
}


@dataclass(frozen=True)
class ApiLimits:
    """The API's token buckets: per key, and per client address for requests whose key is
    missing or unknown (an exhausted address is refused before its key is looked up, so a
    flood of guessed keys costs no database lookups)."""

    keys: Buckets
    unknown_keys: Buckets
    clock_ms: Callable[[], int] = field(default=lambda: int(time.monotonic() * 1000))

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> ApiLimits:
        return cls(
            keys=Buckets(rate_per_s=settings.api_rate_per_s, burst=settings.api_burst),
            unknown_keys=Buckets(
                rate_per_s=settings.unknown_key_rate_per_s, burst=settings.unknown_key_burst
            ),
        )

    @classmethod
    def unlimited(cls) -> ApiLimits:
        return cls(
            keys=Buckets(rate_per_s=1e9, burst=10**9),
            unknown_keys=Buckets(rate_per_s=1e9, burst=10**9),
        )


def too_many(verdict: Verdict, what: str) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"too many requests {what}: retry after {verdict.retry_after_s} s",
        headers=verdict.headers(),
    )


@dataclass(frozen=True)
class Caller:
    """Who makes a request: an API key (`key`), or a customer portal session (`session`)."""

    account_id: str
    actor: Actor
    key: ApiKey | None = None
    session: PortalSession | None = None

    @property
    def reveal(self) -> bool:
        """Sees webhooks' custom header values: OWNER and ADMIN keys, and portal sessions
        that may change them."""
        if self.session is not None:
            return not self.session.read_only
        return self.key is not None and Role(self.key.role) in WRITER_ROLES

    @property
    def webhook_ids(self) -> frozenset[UUID] | None:
        """The webhooks it may reach; None: every webhook of its account."""
        return self.session.webhook_ids if self.session is not None else None

    def reaches(self, webhook_id: str | UUID) -> bool:
        return self.session is None or self.session.reaches(UUID(str(webhook_id)))


class Authorizer:
    """Decides 401, 403 and 429 for account routes, for API keys and portal sessions.

    The address bucket is checked before the key is looked up, so a flood of guessed keys
    costs no database lookups. Keys this process has seen valid are still looked up from an
    address whose bucket is spent: many honest clients behind one proxy or NAT are not
    locked out by one of them guessing (a key found revoked is forgotten).

    A portal session (`Bearer rhp_...`) is taken only on routes marked `portal` in the route
    table (403 elsewhere), in its own account, for its webhooks only (any other is a 404),
    and for reads only when it is read-only. It spends from the keys' bucket, by its digest.
    """

    def __init__(
        self,
        accounts: AccountService,
        limits: ApiLimits | None = None,
        portal: PortalService | None = None,
    ) -> None:
        self._accounts = accounts
        self._limits = limits or ApiLimits.unlimited()
        self._portal = portal
        self._known: OrderedDict[str, None] = OrderedDict()

    async def caller(self, request: web.Request) -> Caller:
        """The request's live key or portal session (401, 429, and 403 for a portal session
        off the portal's routes, decided here); a key's use is noted."""
        limits = self._limits
        address = request.remote or "unknown"
        token = bearer_token(request.headers.get("Authorization"))
        digest = hash_token(token) if token is not None else None
        held = limits.unknown_keys.peek(address, now_ms=limits.clock_ms())
        if not held.allowed and digest not in self._known:
            raise too_many(held, "without a valid API key from this address")
        if token is None or digest is None:
            limits.unknown_keys.take(address, now_ms=limits.clock_ms())
            raise ApiError(
                401, "unauthorized", "an `Authorization: Bearer <api key>` header is required"
            )
        if token.startswith(PORTAL_SESSION_PREFIX) and self._portal is not None:
            return await self._portal_caller(request, digest, address)
        # Looked up on every request, never cached: a revoked or expired key is refused by
        # every replica from the moment its change is committed.
        key = await self._accounts.identify(digest)
        if key is None:
            self._unknown(digest, address)
            raise ApiError(401, "unauthorized", "the API key is not valid")
        self._spend(request, digest, "with this API key")
        self._accounts.saw(key)
        actor = Actor("key", str(key.account_id), key.id, key.label, key.role)
        return Caller(str(key.account_id), actor, key=key)

    async def _portal_caller(self, request: web.Request, digest: str, address: str) -> Caller:
        assert self._portal is not None
        session = await self._portal.identify(digest)
        if session is None:
            self._unknown(digest, address)
            raise ApiError(401, "unauthorized", "the portal session is not valid")
        if not self._portal.live(session):
            self._known.pop(digest, None)
            raise ApiError(401, "unauthorized", "this portal session has expired")
        route = request.get(ROUTE)
        if route is None or not route.portal:
            raise ApiError(403, "forbidden", PORTAL_ONLY)
        self._spend(request, digest, "with this portal session")
        account_id = str(session.account_id)
        actor = Actor("portal", account_id, key_id=session.created_by, session_id=session.id)
        return Caller(account_id, actor, session=session)

    async def access(self, request: web.Request, *, write: bool, owner: bool = False) -> Caller:
        """The caller, when it may read (or write) the path's account, and the path's
        webhook for a portal session; `owner`: only an OWNER key may."""
        caller = await self.caller(request)
        session = caller.session
        if session is not None:
            route = request.get(ROUTE)
            access = decide_portal_access(
                session_account=session.account_id,
                webhook_ids=session.webhook_ids,
                read_only=session.read_only,
                portal_route=route is not None and route.portal and not owner,
                path_account=request.match_info.get("account_id"),
                path_webhook=request.match_info.get("webhook_id"),
                write=write,
            )
            if access is Access.OTHER_WEBHOOK:
                raise NotFound(request.match_info["webhook_id"])
            if access is not Access.ALLOWED:
                raise ApiError(403, "forbidden", _PORTAL_DENIED[access])
            return caller
        key = caller.key
        assert key is not None
        access = decide_access(
            key_account=str(key.account_id),
            role=Role(key.role),
            path_account=request.match_info["account_id"],
            write=write,
        )
        if access is not Access.ALLOWED:
            raise ApiError(403, "forbidden", _DENIED[access])
        if owner and key.role != Role.OWNER:
            raise ApiError(403, "forbidden", "only OWNER keys may do this")
        return caller

    async def account(self, request: web.Request, *, write: bool, owner: bool = False) -> str:
        """The path's account id when the caller may read (or write) it; `owner`: only an
        OWNER key may."""
        return (await self.access(request, write=write, owner=owner)).account_id

    async def actor(self, request: web.Request, *, write: bool, owner: bool = False) -> Actor:
        """The caller as the actor of its changes, when it may read (or write) the path's
        account; `owner`: only an OWNER key may."""
        return (await self.access(request, write=write, owner=owner)).actor

    async def add_webhook(self, caller: Caller, webhook_id: str) -> None:
        """A webhook the caller created: a portal session limited to some webhooks manages
        it from now on."""
        if caller.session is not None and self._portal is not None:
            await self._portal.add_webhook(caller.session, UUID(webhook_id))

    def _spend(self, request: web.Request, digest: str, what: str) -> None:
        self._remember(digest)
        limits = self._limits
        spent = limits.keys.take(digest, now_ms=limits.clock_ms())
        if not spent.allowed:
            raise too_many(spent, what)
        request[RATE_LIMIT] = spent

    def _unknown(self, digest: str, address: str) -> None:
        self._known.pop(digest, None)
        self._limits.unknown_keys.take(address, now_ms=self._limits.clock_ms())

    def _remember(self, digest: str) -> None:
        self._known[digest] = None
        self._known.move_to_end(digest)
        while len(self._known) > MAX_NAMES:
            self._known.popitem(last=False)
