"""The console's webhook pages in Chromium: create a webhook and see its secret once (gone after
a reload), bad input named field by field, edit, disable, rotate the secret, send a test ping,
delete behind a confirmation, and a webhook's health charted with a table beside the chart."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Platform, shot, sign_in
from tests.browser.webhook_helpers import (
    api,
    call,
    create_webhook,
    new_account,
    settled_deliveries,
)
from tests.support.receiver import Script

pytestmark = pytest.mark.integration

SECRET = re.compile(r"^[0-9a-f]{64}$")


async def page_text(page: Page) -> str:
    return await page.evaluate("() => document.body.innerText")


async def stored(page: Page) -> str:
    """Everything the page keeps in sessionStorage and localStorage."""
    return await page.evaluate(
        "() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])"
    )


async def test_creating_a_webhook_shows_its_secret_once_and_a_reload_forgets_it(
    page: Page, platform: Platform
):
    name = f"orders {uuid.uuid4().hex[:8]}"
    url = platform.receiver.url(f"/created/{uuid.uuid4().hex}")
    await sign_in(page, platform.owner_key)
    await page.get_by_role("link", name="New webhook").click()
    await expect(page).to_have_url(f"{platform.url}/console/webhooks/new")
    await page.get_by_label("URL", exact=True).fill(url)
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("participant.joined").check()
    await page.get_by_label("participant.left").check()
    await page.get_by_role("button", name="Add header").click()
    await page.get_by_label("Header name 1").fill("X-Team")
    await page.get_by_label("Header value 1").fill("blue")
    await page.get_by_label("Retry schedule (seconds)").fill("2, 10")
    await page.get_by_label("Ordering").select_option("room")
    await page.get_by_label("Send traceparent header").check()
    await page.get_by_role("button", name="Create webhook").click()

    await expect(page.get_by_text("This secret will not be shown again")).to_be_visible()
    secret = (await page.get_by_label("Secret", exact=True).inner_text()).strip()
    assert SECRET.match(secret), secret
    await expect(page.get_by_role("button", name="Copy secret")).to_be_visible()

    webhooks = (await api(platform, "GET", "/webhooks?limit=100"))["webhooks"]
    [made] = [w for w in webhooks if w["name"] == name]
    assert made["url"] == url
    assert sorted(made["events"]) == ["participant.joined", "participant.left"]
    assert made["headers"] == {"X-Team": "blue"}
    assert made["retry_schedule"] == [2, 10]
    assert made["ordering"] == "room"
    assert made["send_traceparent"] is True

    await page.reload()
    await expect(page.get_by_role("heading", name="New webhook")).to_be_visible()
    assert secret not in await page_text(page)
    assert secret not in await stored(page)

    await page.get_by_role("link", name="Webhooks", exact=True).click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name))
    await expect(row).to_contain_text("Enabled")
    await expect(row).to_contain_text("participant.joined, participant.left")


async def test_bad_input_is_refused_with_each_field_named(page: Page, platform: Platform):
    await sign_in(page, platform.owner_key)
    await page.goto("/console/webhooks/new")
    await page.get_by_label("URL", exact=True).fill("ftp://not-a-webhook")
    await page.get_by_role("button", name="Create webhook").click()

    notice = page.get_by_role("alert")
    await expect(notice).to_contain_text("The webhook was not created")
    await expect(notice).to_contain_text("url")
    await expect(notice).to_contain_text("events")
    await expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("URL", exact=True).fill(platform.receiver.url("/bad-schedule"))
    await page.get_by_label("participant.joined").check()
    await page.get_by_label("Retry schedule (seconds)").fill("1, soon")
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.get_by_role("alert")).to_contain_text('"soon" is not a whole number')
    await expect(page.get_by_label("Retry schedule (seconds)")).to_have_attribute(
        "aria-invalid", "true"
    )

    await page.get_by_label("Retry schedule (seconds)").fill("0")
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.get_by_role("alert")).to_contain_text("retrySchedule")
    await expect(page.get_by_text("This secret will not be shown again")).to_have_count(0)


async def test_editing_disabling_rotating_and_deleting_a_webhook(page: Page, platform: Platform):
    webhook = await create_webhook(platform, f"/edited/{uuid.uuid4().hex}", sendTraceparent=True)
    first_secret = webhook["secret"]
    renamed = f"renamed {uuid.uuid4().hex[:8]}"
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}")
    await expect(page.get_by_role("heading", name=webhook["name"])).to_be_visible()
    await expect(page.get_by_text("Sent (while tracing is on)")).to_be_visible()

    await page.get_by_role("button", name="Edit", exact=True).click()
    await expect(page.get_by_label("Send traceparent header")).to_be_checked()
    await page.get_by_label("Send traceparent header").uncheck()
    await page.get_by_label("Name", exact=True).fill(renamed)
    await page.get_by_label("meeting.started").check()
    await page.get_by_label("Ordering").select_option("room")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_role("heading", name=renamed, level=1)).to_be_visible()
    await expect(page.get_by_text("Per room, in publish order")).to_be_visible()
    await expect(page.get_by_text("Not sent", exact=True)).to_be_visible()
    saved = (await api(platform, "GET", f"/webhooks/{webhook['id']}"))["webhook"]
    assert saved["name"] == renamed
    assert sorted(saved["events"]) == ["meeting.started", "participant.joined"]
    assert saved["ordering"] == "room"
    assert saved["send_traceparent"] is False

    await page.get_by_role("button", name="Disable").click()
    await expect(page.get_by_role("button", name="Enable")).to_be_visible()
    await expect(page.get_by_role("definition").filter(has_text="Disabled")).to_be_visible()
    assert (await api(platform, "GET", f"/webhooks/{webhook['id']}"))["webhook"]["enabled"] is False
    await page.get_by_role("button", name="Enable").click()
    await expect(page.get_by_role("button", name="Disable")).to_be_visible()

    await page.get_by_label("Overlap seconds").fill("700000")
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.get_by_role("alert")).to_contain_text("overlapSeconds")
    await expect(page.get_by_text("This secret will not be shown again")).to_have_count(0)
    await page.get_by_label("Overlap seconds").fill("60")
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.get_by_text("This secret will not be shown again")).to_be_visible()
    rotated = (await page.get_by_label("Secret", exact=True).inner_text()).strip()
    assert SECRET.match(rotated) and rotated != first_secret
    await expect(page.get_by_text("Previous secret signs until")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name=renamed, level=1)).to_be_visible()
    assert rotated not in await page_text(page)

    await page.get_by_role("button", name="Delete", exact=True).click()
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("heading", name=renamed, level=1)).to_be_visible()
    await page.get_by_role("button", name="Delete", exact=True).click()
    await page.get_by_role("button", name="Confirm delete").click()
    await expect(page).to_have_url(f"{platform.url}/console/webhooks")
    status, _ = await call(platform, "GET", f"/webhooks/{webhook['id']}")
    assert status == 404


async def test_a_test_ping_is_delivered_and_the_page_charts_the_webhooks_health(
    page: Page, platform: Platform
):
    path = f"/pinged/{uuid.uuid4().hex}"
    platform.receiver.script(path, Script(statuses=[200], body=b'{"ok": true}'))
    webhook = await create_webhook(platform, path)
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}")
    await page.get_by_role("button", name="Send test ping").click()
    await expect(page.get_by_role("link", name="open its delivery")).to_be_visible()
    await settled_deliveries(platform, webhook["id"], 1, "success")
    assert len(platform.receiver.received[path]) == 1

    await page.reload()
    rate_chart = page.get_by_role("figure").filter(has_text="Success rate over time")
    await expect(rate_chart).to_be_visible()
    await expect(rate_chart.locator("canvas")).to_have_count(1)
    # The numbers drawn are in a table for screen readers too: the bucket of the ping, 100%.
    await expect(page.get_by_role("table", name="Success rate over time")).to_contain_text("100%")
    await expect(page.get_by_role("table", name="p95 latency over time")).to_contain_text("ms")
    await expect(page.get_by_role("article").filter(has_text="Success rate")).to_contain_text(
        "1 of 1 attempts"
    )
    recent = page.get_by_role("table").filter(has_text="webhook.test")
    await expect(recent).to_contain_text("Delivered")
    await shot(page, "webhook")


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map(el => el.outerHTML)"""


async def test_every_control_of_the_webhook_pages_is_labelled_and_reached_by_keyboard(
    page: Page, platform: Platform
):
    webhook = await create_webhook(platform, f"/labelled/{uuid.uuid4().hex}")
    await sign_in(page, platform.owner_key)
    for url, ready in (
        ("/console/webhooks", "New webhook"),
        ("/console/webhooks/new", "participant.joined"),  # the catalog's events, loaded
        (f"/console/webhooks/{webhook['id']}", "Rotate secret"),
        (f"/console/webhooks/{webhook['id']}/deliveries", "Recover failed deliveries"),
    ):
        await page.goto(url)
        await expect(page.get_by_text(ready, exact=True).first).to_be_visible()
        assert await page.evaluate(UNLABELLED_CONTROLS) == [], url

    # The form is filled and sent from the keyboard alone.
    await page.goto("/console/webhooks/new")
    first_event = page.get_by_role("group", name="Events").get_by_role("checkbox").first
    await expect(first_event).to_be_visible()  # the catalog arrives after the form
    await page.get_by_label("URL", exact=True).focus()
    await page.keyboard.type(platform.receiver.url("/typed"))
    await page.keyboard.press("Tab")
    await page.keyboard.type("typed")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Space")
    await expect(first_event).to_be_checked()
    await page.get_by_label("Retry schedule (seconds)").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("This secret will not be shown again")).to_be_visible()
    await expect(page.get_by_text("typed", exact=True)).to_be_visible()


async def test_the_list_shows_each_webhooks_health_and_pages_25_at_a_time(
    page: Page, platform: Platform
):
    account = await new_account(platform, f"list {uuid.uuid4().hex[:8]}")
    healthy, failing = f"/healthy/{uuid.uuid4().hex}", f"/failing/{uuid.uuid4().hex}"
    platform.receiver.script(healthy, Script(statuses=[200]))
    platform.receiver.script(failing, Script(statuses=[500]))
    both = ["participant.joined", "participant.left"]
    orders = await create_webhook(
        platform, healthy, account=account, name="Orders service", events=both
    )
    crm = await create_webhook(
        platform, failing, account=account, name="CRM sync", retrySchedule=[1]
    )
    await create_webhook(
        platform, f"/paused/{uuid.uuid4().hex}", account=account, name="Analytics", enabled=False
    )
    for _ in range(3):
        await platform.trigger("participant.joined", account_id=account.id)
    await settled_deliveries(platform, orders["id"], 3, "success", account=account)
    await settled_deliveries(platform, crm["id"], 3, "failed", account=account)

    await sign_in(page, account.owner_key)

    def row(name: str):
        return page.get_by_role("row").filter(has=page.get_by_role("link", name=name))

    # Cells after the name: URL, events, status, success, p95, failure streak, created.
    await expect(row("Orders service").get_by_role("cell").nth(3)).to_have_text("100%")
    await expect(row("Orders service").get_by_role("cell").nth(4)).to_contain_text("ms")
    await expect(row("Orders service").get_by_role("cell").nth(5)).to_have_text("0")
    await expect(row("CRM sync").get_by_role("cell").nth(3)).to_have_text("0%")
    await expect(row("CRM sync").get_by_role("cell").nth(5)).to_have_text("6")
    await expect(row("Analytics").get_by_role("cell").nth(2)).to_have_text("Disabled")
    await expect(row("Analytics").get_by_role("cell").nth(3)).to_have_text("no attempts")
    await expect(page.get_by_role("navigation", name="Webhook pages")).to_have_count(0)
    await shot(page, "webhooks")

    for n in range(23):
        await create_webhook(platform, f"/many/{n}", account=account, name=f"many {n:02d}")
    await page.reload()
    rows = page.get_by_role("table").locator("tbody tr")
    await expect(rows).to_have_count(25)
    await expect(row("many 22")).to_be_visible()  # newest first
    pages = page.get_by_role("navigation", name="Webhook pages")
    await pages.get_by_role("button", name="Next page").click()
    await expect(pages).to_contain_text("Page 2")
    await expect(rows).to_have_count(1)
    await expect(row("Orders service")).to_be_visible()
    await expect(pages.get_by_role("button", name="Next page")).to_be_disabled()
    await pages.get_by_role("button", name="Previous page").click()
    await expect(rows).to_have_count(25)
