"""Who is calling, and may they do this to this account? 401 and 403 decided here."""

from __future__ import annotations

from aiohttp import web

from services.registry.http import ApiError
from services.registry.keys import bearer_token
from services.registry.policy import Access, Role, decide_access
from services.registry.service import AccountService

_DENIED = {
    Access.OTHER_ACCOUNT: "this API key belongs to another account",
    Access.READ_ONLY_ROLE: "only OWNER and ADMIN keys may make changes",
}


class Authorizer:
    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts

    async def account(self, request: web.Request, *, write: bool) -> str:
        """The path's account id when the request's key may read (or write) it."""
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise ApiError(
                401, "unauthorized", "an `Authorization: Bearer <api key>` header is required"
            )
        owner = await self._accounts.authenticate(token)
        if owner is None:
            raise ApiError(401, "unauthorized", "the API key is not valid")
        access = decide_access(
            key_account=str(owner.account_id),
            role=Role(owner.role),
            path_account=request.match_info["account_id"],
            write=write,
        )
        if access is not Access.ALLOWED:
            raise ApiError(403, "forbidden", _DENIED[access])
        return str(owner.account_id)


def page_limit(request: web.Request, *, default: int, maximum: int) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return min(default, maximum)
    # isascii: str.isdigit() also holds for '³' or '٣', which int() refuses or reads.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise ApiError(
            400,
            "validation_error",
            f"limit: must be a whole number from 1 to {maximum}",
            [{"field": "limit", "message": f"must be from 1 to {maximum}"}],
        )
    return int(raw)
