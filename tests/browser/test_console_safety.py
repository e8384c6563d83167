"""The console's webhook pages are safe in Chromium: a MEMBER key is shown no control that
writes (and the API refuses the write anyway), markup a customer sent (a webhook's name, an
event's payload, a refused URL echoed in an error) is shown as text and never runs, another
account's webhook is not found, and a customer portal session sees only its webhooks, without
delete or the event log (a read-only one without any write), and is never offered the key form."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Dialog, Page, expect

from tests.browser.conftest import Platform, sign_in
from tests.browser.webhook_helpers import call, create_webhook, settled_deliveries

pytestmark = pytest.mark.integration

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
WRITE_BUTTONS = (
    "Edit",
    "Disable",
    "Enable",
    "Send test ping",
    "Delete",
    "Rotate secret",
    "Redeliver",
    "Recover failed deliveries",
    "Create webhook",
)


async def markup_created(page: Page) -> dict[str, int]:
    """Elements that would exist had customer markup been parsed as HTML."""
    return await page.evaluate(
        """() => ({
            img: document.querySelectorAll('img[src="x"]').length,
            script: [...document.scripts].filter(s => s.textContent.includes('alert(1)')).length,
        })"""
    )


async def no_write_controls(page: Page) -> None:
    for name in WRITE_BUTTONS:
        await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await expect(page.get_by_role("link", name="New webhook")).to_have_count(0)


async def test_a_member_sees_no_write_control_and_the_api_refuses_a_write_anyway(
    page: Page, platform: Platform
):
    path = f"/member-view/{uuid.uuid4().hex}"
    webhook = await create_webhook(platform, path, retrySchedule=[1])
    await platform.trigger("participant.joined")
    [delivery] = await settled_deliveries(platform, webhook["id"], 1, "success")

    await sign_in(page, platform.member_key)
    await expect(page.get_by_role("link", name=webhook["name"])).to_be_visible()
    await no_write_controls(page)

    await page.goto(f"/console/webhooks/{webhook['id']}")
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    await expect(page.get_by_role("heading", name="Health")).to_be_visible()
    await no_write_controls(page)
    await expect(page.get_by_label("Overlap seconds")).to_have_count(0)

    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries")
    await expect(page.get_by_role("link", name=f"Delivery {delivery['id']}")).to_be_visible()
    await no_write_controls(page)
    await expect(page.get_by_role("heading", name="Recover a time window")).to_have_count(0)

    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries/{delivery['id']}")
    await expect(page.get_by_role("heading", name="Attempts (1)")).to_be_visible()
    await no_write_controls(page)

    await page.goto("/console/webhooks/new")
    await expect(page.get_by_role("alert")).to_contain_text("This key may only read")
    await expect(page.get_by_label("URL", exact=True)).to_have_count(0)
    await no_write_controls(page)

    for method, rest, body in (
        ("POST", "/webhooks", {"url": platform.receiver.url(path), "events": ["user.created"]}),
        ("PATCH", f"/webhooks/{webhook['id']}", {"enabled": False}),
        ("POST", f"/webhooks/{webhook['id']}/deliveries/{delivery['id']}/redeliver", {}),
    ):
        status, envelope = await call(platform, method, rest, body, key=platform.member_key)
        assert status == 403, (method, rest, envelope)


async def test_markup_in_a_name_and_a_payload_is_shown_as_text_and_never_runs(
    page: Page, platform: Platform
):
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    path = f"/hostile/{uuid.uuid4().hex}"
    webhook = await create_webhook(platform, path, name=IMG)
    await platform.trigger("participant.joined", f"room.name={SCRIPT}", f"user.name={IMG}")
    [delivery] = await settled_deliveries(platform, webhook["id"], 1, "success")

    await sign_in(page, platform.owner_key)
    await expect(page.get_by_role("link", name=IMG).first).to_be_visible()
    assert await markup_created(page) == {"img": 0, "script": 0}

    await page.goto(f"/console/webhooks/{webhook['id']}")
    await expect(page.get_by_role("heading", name=IMG, level=1)).to_be_visible()
    assert await markup_created(page) == {"img": 0, "script": 0}

    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries/{delivery['id']}")
    payload = page.get_by_label("Payload", exact=True)
    await expect(payload).to_contain_text(f'"name": "{SCRIPT}"')
    await expect(payload).to_contain_text(IMG)
    assert await payload.locator("*").evaluate_all("els => els.map(e => e.tagName)") == ["CODE"]
    assert await markup_created(page) == {"img": 0, "script": 0}

    # A refused URL comes back in the API's error message: shown as the text it is.
    await page.goto("/console/webhooks/new")
    await page.get_by_label("URL", exact=True).fill(f"https://example.com/{IMG}")
    await page.get_by_label("participant.joined").check()
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    assert await markup_created(page) == {"img": 0, "script": 0}
    assert dialogs == []


async def test_another_accounts_webhook_is_not_found(page: Page, platform: Platform):
    ours = await create_webhook(platform, f"/elsewhere/{uuid.uuid4().hex}")
    status, envelope = await call(platform, "GET", "/webhooks", key=platform.other_owner_key)
    assert status == 403, envelope

    await sign_in(page, platform.other_owner_key)
    await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    await expect(page.get_by_text(ours["name"])).to_have_count(0)
    await page.goto(f"/console/webhooks/{ours['id']}")
    await expect(page.get_by_role("alert")).to_contain_text("The webhook could not be read")
    await expect(page.get_by_text(ours["name"])).to_have_count(0)
    await page.goto(f"/console/webhooks/{ours['id']}/deliveries")
    await expect(page.get_by_role("alert").first).to_be_visible()
    await expect(page.get_by_text(ours["name"])).to_have_count(0)


async def portal_link(platform: Platform, **body: object) -> str:
    status, envelope = await call(platform, "POST", "/portal-sessions", body)
    assert status == 201, envelope
    return envelope["data"]["url"]


async def test_a_portal_session_manages_its_webhook_without_delete_or_the_event_log(
    page: Page, platform: Platform
):
    path = f"/portal/{uuid.uuid4().hex}"
    webhook = await create_webhook(platform, path)
    hidden = await create_webhook(platform, f"/not-in-portal/{uuid.uuid4().hex}")
    await platform.trigger("participant.joined")
    [delivery] = await settled_deliveries(platform, webhook["id"], 1, "success")

    await page.goto(await portal_link(platform, webhookIds=[webhook["id"]]))
    await expect(page).to_have_url(f"{platform.url}/console/portal/webhooks")
    await expect(page.get_by_role("link", name=webhook["name"])).to_be_visible()
    await expect(page.get_by_role("link", name=hidden["name"])).to_have_count(0)
    await expect(page.get_by_role("link", name="Workflows")).to_have_count(0)

    await page.get_by_role("link", name=webhook["name"]).click()
    await expect(page).to_have_url(f"{platform.url}/console/portal/webhooks/{webhook['id']}")
    await expect(page.get_by_role("button", name="Send test ping")).to_be_visible()
    await expect(page.get_by_role("button", name="Rotate secret")).to_be_visible()
    await expect(page.get_by_role("button", name="Delete", exact=True)).to_have_count(0)

    await page.goto(f"/console/portal/webhooks/{webhook['id']}/deliveries/{delivery['id']}")
    await expect(page.get_by_role("heading", name="Attempts (1)")).to_be_visible()
    await expect(page.get_by_role("link", name=f"Event {delivery['event_id']}")).to_have_count(0)


async def test_a_read_only_portal_session_sees_no_write_control(page: Page, platform: Platform):
    webhook = await create_webhook(platform, f"/portal-ro/{uuid.uuid4().hex}")
    await page.goto(await portal_link(platform, webhookIds=[webhook["id"]], readOnly=True))
    await expect(page.get_by_role("link", name=webhook["name"])).to_be_visible()
    await no_write_controls(page)
    await page.goto(f"/console/portal/webhooks/{webhook['id']}/deliveries")
    await expect(page.get_by_role("heading", name="Deliveries", exact=False)).to_be_visible()
    await no_write_controls(page)
    await expect(page.get_by_role("heading", name="Recover a time window")).to_have_count(0)


async def test_a_portal_page_without_its_session_asks_for_a_new_link_not_a_key(
    page: Page, platform: Platform
):
    webhook = await create_webhook(platform, f"/portal-gone/{uuid.uuid4().hex}")
    await page.goto(await portal_link(platform, webhookIds=[webhook["id"]]))
    await expect(page.get_by_role("link", name=webhook["name"])).to_be_visible()
    await page.evaluate("() => sessionStorage.clear()")
    await page.reload()
    await expect(page.get_by_role("alert")).to_contain_text("This portal session has ended")
    await expect(page.get_by_label("API key")).to_have_count(0)
