"""HTTP adapters for API keys (OWNER keys only: list, create, revoke) and /v1/me (any key or
portal session)."""

from __future__ import annotations

from aiohttp import web

from services.registry.accounts.models import (
    ApiKeyCreatedData,
    ApiKeyData,
    ApiKeyInfo,
    ApiKeyInput,
    ApiKeyListData,
    ApiKeyWithToken,
    CallerData,
    KeyCallerData,
    PortalCallerData,
)
from services.registry.accounts.service import AccountService, LastOwnerKey
from services.registry.auth import Authorizer
from services.registry.errors import parse_id
from services.registry.http import ApiError, ok, read_json
from services.registry.policy import Role
from services.registry.portal.models import webhook_id_list
from services.registry.query import DEFAULT_PAGE_SIZE, page_limit
from services.registry.route_table import ACCOUNT_ERRORS, Answer, Route, register

API_KEYS = "/v1/accounts/{account_id}/api-keys"
API_KEY = API_KEYS + "/{key_id}"


class KeyRoutes:
    def __init__(self, auth: Authorizer, accounts: AccountService, *, page_size_max: int) -> None:
        self._auth = auth
        self._accounts = accounts
        self._page_size_max = page_size_max

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def list(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False, owner=True)
        limit = page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)
        page = await self._accounts.list_keys(
            parse_id(account_id), limit=limit, cursor=request.query.get("cursor") or None
        )
        return ok(
            "API keys",
            {
                "api_keys": [ApiKeyInfo.of(k).model_dump(mode="json") for k in page.keys],
                "next_cursor": page.next_cursor,
            },
        )

    async def create(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True, owner=True)
        body = ApiKeyInput.model_validate(await read_json(request))
        minted = await self._accounts.mint_key(
            parse_id(actor.account_id),
            Role(body.role),
            label=body.label,
            expires_at=body.expires_at,
            actor=actor,
        )
        created = ApiKeyWithToken(**ApiKeyInfo.of(minted.key).model_dump(), key=minted.token)
        return ok("API key created", {"api_key": created.model_dump(mode="json")}, status=201)

    async def revoke(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True, owner=True)
        try:
            key = await self._accounts.revoke_key(
                parse_id(actor.account_id), parse_id(request.match_info["key_id"]), actor=actor
            )
        except LastOwnerKey:
            raise ApiError(
                409,
                "last_owner_key",
                "this is the account's last live OWNER key: create another OWNER key first",
            ) from None
        return ok("API key revoked", {"api_key": ApiKeyInfo.of(key).model_dump(mode="json")})

    async def me(self, request: web.Request) -> web.Response:
        caller = await self._auth.caller(request)
        session, key = caller.session, caller.key
        if session is not None:
            data: KeyCallerData | PortalCallerData = PortalCallerData(
                account_id=caller.account_id,
                kind="portal",
                role=None,
                read_only=session.read_only,
                webhook_ids=webhook_id_list(session.webhook_ids),
                expires_at=session.expires_at,
            )
            return ok("The calling portal session", data.model_dump(mode="json"))
        assert key is not None
        data = KeyCallerData(
            account_id=caller.account_id,
            kind="key",
            key_id=str(key.id),
            role=key.role,
            label=key.label,
        )
        return ok("The calling API key", data.model_dump(mode="json"))


ROUTES = (
    Route(
        "GET",
        API_KEYS,
        KeyRoutes.list,
        "List the account's API keys, newest first, revoked ones included (OWNER keys only);"
        " never the keys themselves.",
        Answer(200, ApiKeyListData),
        paged=True,
    ),
    Route(
        "POST",
        API_KEYS,
        KeyRoutes.create,
        "Create an API key (OWNER keys only); the answer carries the key, once.",
        Answer(201, ApiKeyCreatedData),
        body=ApiKeyInput,
        errors=(*ACCOUNT_ERRORS, 409),
    ),
    Route(
        "DELETE",
        API_KEY,
        KeyRoutes.revoke,
        "Revoke an API key (OWNER keys only): every request with it is refused from now on;"
        " a revoked key is answered as it is. The account's last live OWNER key cannot be"
        " revoked (409).",
        Answer(200, ApiKeyData),
        errors=(*ACCOUNT_ERRORS, 409),
    ),
    Route(
        "GET",
        "/v1/me",
        KeyRoutes.me,
        "The caller: an API key's account, id, role and label (any key), or a customer"
        " portal session's account, webhooks and expiry.",
        Answer(200, CallerData),
        errors=(401,),
        portal=True,
    ),
)
