"""What the console's webhook tests set up through the API itself (not through the pages they
test): webhooks, a delivery reaching its final state."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from tests.browser.conftest import Platform
from tests.support.polling import eventually


async def call(
    platform: Platform, method: str, path: str, body: Any = None, *, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, envelope) of a call to the account's API with the OWNER key (or `key`)."""
    url = f"{platform.url}/v1/accounts/{platform.account_id}{path}"
    headers = {"Authorization": f"Bearer {key or platform.owner_key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


async def api(platform: Platform, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """`data` of an OWNER call that must succeed."""
    status, envelope = await call(platform, method, path, body)
    assert status < 300, envelope
    return envelope["data"]


async def create_webhook(platform: Platform, path: str, **fields: Any) -> dict[str, Any]:
    """A webhook to the platform's receiver at `path`, for participant.joined unless told."""
    body = {
        "url": platform.receiver.url(path),
        "events": ["participant.joined"],
        "name": f"hook {uuid.uuid4().hex[:8]}",
        **fields,
    }
    return (await api(platform, "POST", "/webhooks", body))["webhook"]


async def deliveries(platform: Platform, webhook_id: str, **query: str) -> list[dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    data = await api(platform, "GET", f"/webhooks/{webhook_id}/deliveries?{params}")
    return data["deliveries"]


async def settled_deliveries(
    platform: Platform, webhook_id: str, count: int, status: str, *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The webhook's deliveries once `count` of them have `status`."""

    async def settled() -> list[dict[str, Any]] | None:
        found = await deliveries(platform, webhook_id, status=status)
        return found if len(found) >= count else None

    return await eventually(settled, timeout_s=timeout_s, interval_s=0.25)
