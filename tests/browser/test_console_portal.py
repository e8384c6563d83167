"""The customer portal in Chromium: a link opens one account's webhooks (only those it names)
and nothing of another account's, with no way to the workflows, keys, audit log or events; the
link token leaves the address at once and works once; a reload keeps the session until it
expires; and the portal's pages may be framed only as the registry's setting says."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Platform, shot

pytestmark = pytest.mark.integration

TOKEN_KEY = "roomhooks.console.token"


async def call(platform: Platform, key: str, method: str, path: str, body: Any = None) -> dict:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{platform.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as answer,
    ):
        payload = await answer.json()
        assert answer.status < 300, payload
        return payload["data"]


async def webhook(platform: Platform, account_id: str, key: str, name: str) -> dict:
    body = {"url": "http://127.0.0.1:9/portal", "events": ["participant.joined"], "name": name}
    path = f"/v1/accounts/{account_id}/webhooks"
    return (await call(platform, key, "POST", path, body))["webhook"]


async def portal_link(platform: Platform, **body: Any) -> str:
    """The fragment of a new portal link of the platform's account: `#token=...`."""
    path = f"/v1/accounts/{platform.account_id}/portal-sessions"
    data = await call(platform, platform.owner_key, "POST", path, body)
    url = data["url"]
    assert "/console/portal#token=" in url
    return url[url.index("#") :]


async def test_a_portal_link_shows_its_webhooks_only_until_it_expires(
    page: Page, platform: Platform, platform_database: str
):
    tag = uuid.uuid4().hex[:8]
    shown = await webhook(platform, platform.account_id, platform.owner_key, f"shown {tag}")
    unlisted = await webhook(platform, platform.account_id, platform.owner_key, f"unlisted {tag}")
    foreign = await webhook(
        platform, platform.other_account_id, platform.other_owner_key, f"foreign {tag}"
    )
    fragment = await portal_link(platform, webhookIds=[shown["id"]])

    response = await page.goto(f"/console/portal{fragment}")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy  # no origin configured: not framable
    assert "x-frame-options" not in response.headers  # the portal's framing is the CSP's

    await expect(page).to_have_url(f"{platform.url}/console/portal/webhooks")  # no fragment
    await expect(page.get_by_role("link", name=shown["name"])).to_be_visible()
    kept = await page.evaluate(f"() => sessionStorage.getItem('{TOKEN_KEY}')")
    assert kept.startswith("rhp_")
    main = await page.locator("main").inner_text()
    assert unlisted["name"] not in main and foreign["name"] not in main
    nav = page.get_by_role("navigation", name="Console")
    for absent in ("Workflows", "API keys", "Audit log", "Events", "Docs"):
        await expect(nav.get_by_role("link", name=absent, exact=True)).to_have_count(0)
    await expect(nav.get_by_role("link", name="Webhooks", exact=True)).to_be_visible()
    await shot(page, "portal")

    # Another page of the console is not the portal's: it goes back to the portal's webhooks.
    await page.goto("/console/workflows")
    await expect(page).to_have_url(f"{platform.url}/console/portal/webhooks")

    # A reload keeps the session.
    await page.reload()
    await expect(page.get_by_role("link", name=shown["name"])).to_be_visible()

    # Expired (as an hour would have done), the next load says so and shows nothing.
    conn = await asyncpg.connect(platform_database)
    try:
        expired = await conn.execute(
            "UPDATE registry.portal_sessions SET expires_at = now() - interval '1 second'"
            " WHERE account_id = $1",
            uuid.UUID(platform.account_id),
        )
    finally:
        await conn.close()
    assert expired != "UPDATE 0"
    await page.reload()
    await expect(page.get_by_text("session has ended")).to_be_visible()
    await expect(page.get_by_role("link", name=shown["name"])).to_have_count(0)


async def test_a_used_link_says_so_and_an_entry_without_a_link_explains_itself(
    page: Page, platform: Platform
):
    fragment = await portal_link(platform)
    await page.goto(f"/console/portal{fragment}")
    await expect(page).to_have_url(f"{platform.url}/console/portal/webhooks")

    other_tab = await page.context.new_page()
    await other_tab.goto(f"/console/portal{fragment}")
    alert = other_tab.get_by_role("alert")
    await expect(alert).to_contain_text("This portal link cannot be used")
    await expect(alert).to_contain_text("used")
    await expect(other_tab).to_have_url(f"{platform.url}/console/portal")  # fragment dropped
    await other_tab.close()

    fresh = await page.context.new_page()
    await fresh.goto("/console/portal")
    await expect(fresh.get_by_role("status")).to_contain_text("This page opens a portal link")
    await fresh.close()


async def test_a_read_only_link_offers_no_control_that_writes(page: Page, platform: Platform):
    name = f"read only {uuid.uuid4().hex[:8]}"
    made = await webhook(platform, platform.account_id, platform.owner_key, name)
    fragment = await portal_link(platform, webhookIds=[made["id"]], readOnly=True)
    await page.goto(f"/console/portal{fragment}")
    await expect(page.get_by_role("link", name=name)).to_be_visible()
    await expect(page.get_by_role("link", name="New webhook")).to_have_count(0)
