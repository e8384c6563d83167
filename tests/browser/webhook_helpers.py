"""What the console's webhook tests set up through the API itself (not through the pages they
test): an account of a test's own, webhooks, a delivery reaching its final state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.browser.conftest import Platform
from tests.support.dev_listen import indexed_webhooks
from tests.support.devstack import PROBE_PORT_SETTINGS
from tests.support.polling import eventually


@dataclass(frozen=True)
class Account:
    id: str
    owner_key: str


async def new_account(platform: Platform, name: str) -> Account:
    """An account of the test's own (its lists hold only what the test made) and its OWNER key."""
    account_id = await platform.cli("accounts", "create", "--name", name)
    key = await platform.cli("keys", "create", "--role", "OWNER", "--account", account_id)
    return Account(account_id, key)


async def call(
    platform: Platform,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    account: Account | None = None,
) -> tuple[int, dict[str, Any]]:
    """(status, envelope) of a call to the account's API with its OWNER key (or `key`)."""
    account_id = account.id if account else platform.account_id
    key = key or (account.owner_key if account else platform.owner_key)
    url = f"{platform.url}/v1/accounts/{account_id}{path}"
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


async def api(
    platform: Platform, method: str, path: str, body: Any = None, *, account: Account | None = None
) -> dict[str, Any]:
    """`data` of an OWNER call that must succeed."""
    status, envelope = await call(platform, method, path, body, account=account)
    assert status < 300, envelope
    return envelope["data"]


async def create_webhook(
    platform: Platform, path: str, *, account: Account | None = None, **fields: Any
) -> dict[str, Any]:
    """A webhook to the platform's receiver at `path`, for participant.joined unless told;
    an enabled one is returned once fanout has it in its index, so an event published next
    reaches it (fanout learns of webhooks from the registry's topic, a moment later)."""
    body = {
        "url": platform.receiver.url(path),
        "events": ["participant.joined"],
        "name": f"hook {uuid.uuid4().hex[:8]}",
        **fields,
    }
    port = int(platform.stack.environ[PROBE_PORT_SETTINGS["fanout"]])
    async with aiohttp.ClientSession() as http:
        before = await indexed_webhooks(http, port)
        webhook = (await api(platform, "POST", "/webhooks", body, account=account))["webhook"]
        if webhook["enabled"]:

            async def indexed() -> bool:
                return await indexed_webhooks(http, port) > before

            await eventually(indexed, timeout_s=30, interval_s=0.05)
    return webhook


async def deliveries(
    platform: Platform, webhook_id: str, *, account: Account | None = None, **query: str
) -> list[dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    path = f"/webhooks/{webhook_id}/deliveries?{params}"
    return (await api(platform, "GET", path, account=account))["deliveries"]


async def settled_deliveries(
    platform: Platform,
    webhook_id: str,
    count: int,
    status: str,
    *,
    account: Account | None = None,
    timeout_s: float = 30.0,
) -> list[dict[str, Any]]:
    """The webhook's deliveries once `count` of them have `status`."""

    async def settled() -> list[dict[str, Any]] | None:
        found = await deliveries(platform, webhook_id, account=account, status=status)
        if len(found) >= count:
            return found
        every = await deliveries(platform, webhook_id, account=account)
        seen = [(d["status"], d["attempts"], d["last_error"]) for d in every]
        raise AssertionError(f"{count} deliveries {status} wanted; the webhook has {seen}")

    return await eventually(settled, timeout_s=timeout_s, interval_s=0.25)
