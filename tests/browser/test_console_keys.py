"""The console's API keys, audit log, catalog and docs pages in Chromium: a new key is shown
once and works; revoking asks first and the key stops working; a MEMBER sees neither; the
audit log shows the changes with hidden values as hidden; the docs list the API's operations;
the catalog shows each event's payload shape and, as text, its example."""

from __future__ import annotations

import json
import uuid

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Platform, shot, sign_in

pytestmark = pytest.mark.integration


async def me_status(platform: Platform, key: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.url}/v1/me", headers={"Authorization": f"Bearer {key}"}) as answer,
    ):
        return answer.status


async def test_a_new_key_is_shown_once_and_revoking_it_asks_first(page: Page, platform: Platform):
    label = f"ci {uuid.uuid4().hex[:8]}"
    await sign_in(page, platform.owner_key)
    await page.goto("/console/api-keys")
    await page.get_by_label("Role").select_option("ADMIN")
    await page.get_by_label("Label").fill(label)
    await page.get_by_role("button", name="Create key").click()

    shown = page.get_by_label("Created API key")
    await expect(shown).to_be_visible()
    key = (await shown.inner_text()).strip()
    await expect(page.get_by_text("This key will not be shown again")).to_be_visible()
    await expect(page.get_by_role("button", name="Copy")).to_be_visible()
    assert await me_status(platform, key) == 200
    row = page.get_by_role("row").filter(has_text=label)
    await expect(row).to_contain_text("ADMIN")
    await expect(row).to_contain_text(key[:8])
    assert key not in await page.locator("table").inner_text()  # lists show the prefix only
    await shot(page, "api-key-created")

    # Gone after a reload: only the creation's answer held it.
    await page.reload()
    await expect(page.get_by_role("row").filter(has_text=label)).to_be_visible()
    assert key not in await page.content()

    row = page.get_by_role("row").filter(has_text=label)
    await row.get_by_role("button", name=f"Revoke {label}").click()
    await expect(row.get_by_role("group")).to_contain_text("Every request with it is refused")
    await row.get_by_role("button", name="Cancel").click()
    assert await me_status(platform, key) == 200
    await row.get_by_role("button", name=f"Revoke {label}").click()
    await row.get_by_role("button", name=f"Confirm revoke {label}".lower(), exact=False).click()
    await expect(row.get_by_role("button", name=f"Revoke {label}")).to_have_count(0)
    assert await me_status(platform, key) == 401


async def test_a_bad_expiry_is_refused_naming_the_field(page: Page, platform: Platform):
    await sign_in(page, platform.owner_key)
    await page.goto("/console/api-keys")
    await page.get_by_label("Expires").fill("2001-01-01T00:00")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_role("alert")).to_contain_text("expiresAt")
    await expect(page.get_by_label("Created API key")).to_have_count(0)


async def test_a_member_sees_no_keys_and_no_audit_log(page: Page, platform: Platform):
    await sign_in(page, platform.member_key)
    await page.goto("/console/api-keys")
    await expect(
        page.get_by_text("Only OWNER keys list, create and revoke API keys")
    ).to_be_visible()
    await expect(page.get_by_role("button", name="Create key")).to_have_count(0)
    await page.goto("/console/audit")
    await expect(page.get_by_text("Only OWNER and ADMIN keys read the audit log")).to_be_visible()


async def test_the_audit_log_shows_changes_and_hidden_values_as_hidden(
    page: Page, platform: Platform
):
    name = f"audited {uuid.uuid4().hex[:8]}"
    marker = f"never-copied-{uuid.uuid4().hex[:8]}"
    url = f"{platform.url}/v1/accounts/{platform.account_id}/workflows"
    code = f"export default async () => '{marker}';\n"
    body = {"name": name, "events": ["participant.joined"], "code": code}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"Authorization": f"Bearer {platform.owner_key}"}) as a,
    ):
        assert a.status == 201, await a.text()
        workflow_id = (await a.json())["data"]["workflow"]["id"]

    await sign_in(page, platform.owner_key)
    await page.goto("/console/audit")
    row = page.get_by_role("row").filter(has_text=workflow_id)
    await expect(row).to_contain_text("workflow.created")
    await expect(row).to_contain_text(name)
    await expect(row.get_by_role("listitem").filter(has_text="code")).to_have_text("code: hidden")
    assert marker not in await page.locator("main").inner_text()
    await shot(page, "audit-log")


async def test_the_docs_list_every_operation_and_the_catalog_every_event(
    page: Page, platform: Platform
):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/openapi.json") as answer:
            document = await answer.json()
        async with http.get(f"{platform.url}/v1/event-types") as answer:
            catalog = (await answer.json())["data"]["event_types"]
    operations = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]

    await sign_in(page, platform.owner_key)
    await page.goto("/console/docs")
    rows = page.locator("main table tbody tr")
    await expect(rows).to_have_count(len(operations))
    texts = [" ".join(t.split()[:2]) for t in await rows.all_inner_texts()]
    assert sorted(texts) == sorted(operations)
    await page.get_by_label("Filter operations").fill("api-keys")
    await expect(rows).to_have_count(sum("api-keys" in op for op in operations))

    await page.goto("/console/catalog")
    await expect(page.locator("main article")).to_have_count(len(catalog))
    first = catalog[0]
    article = page.locator("main article").filter(has_text=first["name"]).first
    await expect(article).to_contain_text(first["description"])
    await expect(article).to_contain_text(f"{first['scope']} event")

    # An example is shown as the text of exactly the body a webhook receives, with its shape.
    closed = next(t for t in catalog if t["name"] == "session.closed")
    article = page.get_by_role("article", name="session.closed", exact=True)
    await article.locator("summary", has_text="Example of session.closed").click()
    example = article.locator("pre[aria-label='Example of session.closed']")
    await expect(example).to_be_visible()
    assert await example.inner_text() == json.dumps(closed["example"], indent=2, ensure_ascii=False)
    assert '"name": "Grace Hopper"' in await example.inner_text()
    await article.locator("summary", has_text="Payload shape of session.closed").click()
    shape = article.locator("pre[aria-label='Payload shape of session.closed']")
    await expect(shape).to_contain_text('"const": "session.closed"')
    await shot(page, "catalog-example")
