"""Who is calling, and may they do this to this account? 401 and 403 decided here."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from services.registry.accounts.models import ApiKey
from services.registry.accounts.service import AccountService
from services.registry.audit.models import Actor
from services.registry.http import RATE_LIMIT, ApiError
from services.registry.keys import bearer_token, hash_token
from services.registry.policy import Access, Role, decide_access
from services.registry.rate_limits import MAX_NAMES, Buckets, Verdict
from services.registry.settings import RegistrySettings

_DENIED = {
    Access.OTHER_ACCOUNT: "this API key belongs to another account",
    Access.READ_ONLY_ROLE: "only OWNER and ADMIN keys may make changes",
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


class Authorizer:
    """Decides 401, 403 and 429 for account routes.

    The address bucket is checked before the key is looked up, so a flood of guessed keys
    costs no database lookups. Keys this process has seen valid are still looked up from an
    address whose bucket is spent: many honest clients behind one proxy or NAT are not
    locked out by one of them guessing (a key found revoked is forgotten).
    """

    def __init__(self, accounts: AccountService, limits: ApiLimits | None = None) -> None:
        self._accounts = accounts
        self._limits = limits or ApiLimits.unlimited()
        self._known: OrderedDict[str, None] = OrderedDict()

    async def caller(self, request: web.Request) -> ApiKey:
        """The request's live key (401 and 429 decided here); its use is noted."""
        limits = self._limits
        address = request.remote or "unknown"
        token = bearer_token(request.headers.get("Authorization"))
        digest = hash_token(token) if token is not None else None
        held = limits.unknown_keys.peek(address, now_ms=limits.clock_ms())
        if not held.allowed and digest not in self._known:
            raise too_many(held, "without a valid API key from this address")
        if digest is None:
            limits.unknown_keys.take(address, now_ms=limits.clock_ms())
            raise ApiError(
                401, "unauthorized", "an `Authorization: Bearer <api key>` header is required"
            )
        # Looked up on every request, never cached: a revoked or expired key is refused by
        # every replica from the moment its change is committed.
        key = await self._accounts.identify(digest)
        if key is None:
            self._known.pop(digest, None)
            limits.unknown_keys.take(address, now_ms=limits.clock_ms())
            raise ApiError(401, "unauthorized", "the API key is not valid")
        self._remember(digest)
        spent = limits.keys.take(digest, now_ms=limits.clock_ms())
        if not spent.allowed:
            raise too_many(spent, "with this API key")
        request[RATE_LIMIT] = spent
        self._accounts.saw(key)
        return key

    async def account(self, request: web.Request, *, write: bool, owner: bool = False) -> str:
        """The path's account id when the request's key may read (or write) it; `owner`:
        only an OWNER key may."""
        return (await self.actor(request, write=write, owner=owner)).account_id

    async def actor(self, request: web.Request, *, write: bool, owner: bool = False) -> Actor:
        """The request's key as the actor of its changes, when it may read (or write) the
        path's account; `owner`: only an OWNER key may."""
        key = await self.caller(request)
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
        return Actor("key", str(key.account_id), key.id, key.label, key.role)

    def _remember(self, digest: str) -> None:
        self._known[digest] = None
        self._known.move_to_end(digest)
        while len(self._known) > MAX_NAMES:
            self._known.popitem(last=False)
