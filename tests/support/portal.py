"""Customer portal sessions for tests: a link made with an OWNER key and exchanged, as the
console's portal page does."""

from __future__ import annotations

from typing import Any


async def portal_link(registry: Any, account: Any, **body: Any) -> dict[str, Any]:
    """POST .../portal-sessions with `account`'s OWNER key: the answer's data (url,
    expires_at)."""
    resp = await registry.http.post(
        f"{registry.url}/v1/accounts/{account.id}/portal-sessions",
        json=body,
        headers=account.auth(),
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


def link_token(url: str) -> str:
    return url.split("#token=", 1)[1]


async def exchange(registry: Any, token: str) -> tuple[int, dict[str, Any]]:
    resp = await registry.http.post(
        f"{registry.url}/v1/portal-sessions/exchange", json={"token": token}
    )
    return resp.status, await resp.json()


async def portal_session(registry: Any, account: Any, **body: Any) -> str:
    """A session token of `account`, made with `body` (webhookIds, readOnly, ttlSeconds)."""
    link = await portal_link(registry, account, **body)
    status, answer = await exchange(registry, link_token(link["url"]))
    assert status == 200, answer
    return answer["data"]["session_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
