"""The console's delivery pages in Chromium: a published event's delivery appears on its
webhook's deliveries page, opens with its payload and every attempt, is redelivered, and a
window of failed deliveries is recovered with the job's progress bar reaching done; a webhook
with 10,000 deliveries shows them 25 a page; From and To, in the user's time zone, show one
day's deliveries and stay in the page's URL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Platform, shot, sign_in
from tests.browser.webhook_helpers import create_webhook, settled_deliveries
from tests.support.receiver import Script

pytestmark = pytest.mark.integration


def delivery_rows(page: Page):
    return page.get_by_role("table").filter(has_text="Attempts").locator("tbody tr")


async def shown_ids(page: Page) -> list[str]:
    """The deliveries the table shows once it has its answer, by their links' names."""
    await expect(page.locator("table.deliveries")).to_have_attribute("aria-busy", "false")
    return (
        await delivery_rows(page)
        .get_by_role("link")
        .evaluate_all("links => links.map(a => a.getAttribute('aria-label'))")
    )


async def refresh_until_rows(page: Page, count: int, *, tries: int = 40) -> None:
    """Press Refresh until the table shows `count` rows (the page reads the log when asked)."""
    for _ in range(tries):
        if await delivery_rows(page).count() >= count:
            return
        await page.get_by_role("button", name="Refresh").click()
        await page.wait_for_timeout(250)
    await expect(delivery_rows(page)).to_have_count(count)


async def test_a_published_events_delivery_appears_and_opens_with_every_attempt(
    page: Page, platform: Platform
):
    path = f"/published/{uuid.uuid4().hex}"
    platform.receiver.script(path, Script(statuses=[503, 200], body=b'{"took": "it"}'))
    webhook = await create_webhook(platform, path, retrySchedule=[1])
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries")
    await expect(page.get_by_text("No deliveries yet.")).to_be_visible()

    event_id = await platform.trigger("participant.joined", 'room.name="Quarterly plan"')
    await refresh_until_rows(page, 1)
    row = delivery_rows(page).first
    await expect(row).to_contain_text("participant.joined")
    [delivered] = await settled_deliveries(platform, webhook["id"], 1, "success")
    await page.get_by_role("button", name="Refresh").click()
    await expect(row).to_contain_text("Delivered")
    await shot(page, "deliveries")

    await row.get_by_role("link").click()
    await expect(page).to_have_url(
        f"{platform.url}/console/webhooks/{webhook['id']}/deliveries/{delivered['id']}"
    )
    await page.reload()  # a deep link to a delivery opens after a reload
    payload = page.get_by_label("Payload", exact=True)
    await expect(payload).to_contain_text('"name": "Quarterly plan"')
    assert json.loads(await payload.inner_text())["id"] == event_id
    await expect(page.get_by_role("heading", name="Attempts (2)")).to_be_visible()
    first = page.get_by_role("article", name="Attempt 1")
    second = page.get_by_role("article", name="Attempt 2")
    await expect(first).to_contain_text("503")
    await expect(second).to_contain_text("200")
    await second.get_by_text("Response body").click()
    await expect(second.get_by_label("Response body of attempt 2")).to_contain_text('"took": "it"')
    await shot(page, "delivery")

    await page.get_by_role("button", name="Redeliver").click()
    await expect(page.get_by_role("heading", name="Attempts (3)")).to_be_visible(timeout=30_000)
    await expect(page.get_by_role("article", name="Attempt 3")).to_contain_text("200")
    assert len(platform.receiver.received[path]) == 3


async def test_recovering_a_window_runs_the_job_to_done_with_a_progress_bar(
    page: Page, platform: Platform
):
    path = f"/recovered/{uuid.uuid4().hex}"
    platform.receiver.script(path, Script(statuses=[500]))
    webhook = await create_webhook(platform, path, retrySchedule=[1])
    await platform.trigger("participant.joined")
    await platform.trigger("participant.joined")
    await settled_deliveries(platform, webhook["id"], 2, "failed")
    platform.receiver.script(path, Script(statuses=[200]))

    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries")
    await page.get_by_label("Status", exact=True).select_option("failed")
    await expect(delivery_rows(page)).to_have_count(2)
    await page.get_by_role("button", name="Recover failed deliveries").click()

    status = page.locator("#recover-status")
    await expect(status).to_have_attribute("data-status", "done", timeout=30_000)
    await expect(status).to_contain_text("Done: 2 of 2 sent again")
    progress = page.get_by_label("Recovery progress")
    assert await progress.get_attribute("max") == "2"
    assert await progress.get_attribute("value") == "2"

    await settled_deliveries(platform, webhook["id"], 2, "success")
    await page.get_by_label("Status", exact=True).select_option("success")
    await expect(delivery_rows(page)).to_have_count(2)
    await page.get_by_label("Status", exact=True).select_option("failed")
    await expect(page.get_by_text("No deliveries with status failed yet.")).to_be_visible()


async def test_ten_thousand_deliveries_are_shown_25_a_page(
    page: Page, platform: Platform, platform_database: str
):
    webhook = await create_webhook(platform, f"/busy/{uuid.uuid4().hex}")
    connection = await asyncpg.connect(platform_database)
    try:
        # Within today's partition, newest first: delivery n is n tenths of a second older.
        await connection.execute(
            "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
            " payload, status, attempts, created_at, updated_at)"
            " SELECT gen_random_uuid(), $1, $2, 'evt-' || n, 'participant.joined', '{}',"
            " 'success', 1, at, at FROM generate_series(1, 10000) AS n,"
            " greatest(now() - n * interval '100 milliseconds', date_trunc('day', now())) AS at",
            uuid.UUID(webhook["id"]),
            uuid.UUID(platform.account_id),
        )
    finally:
        await connection.close()

    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries")
    await expect(delivery_rows(page)).to_have_count(25)
    first_page = await shown_ids(page)
    pages = page.get_by_role("navigation", name="Delivery pages")
    await expect(pages).to_contain_text("Page 1")
    await expect(pages.get_by_role("button", name="Previous page")).to_be_disabled()

    await pages.get_by_role("button", name="Next page").click()
    await expect(pages).to_contain_text("Page 2")
    await expect(delivery_rows(page)).to_have_count(25)
    second_page = await shown_ids(page)
    assert len(set(first_page + second_page)) == 50

    await pages.get_by_role("button", name="Previous page").click()
    await expect(pages).to_contain_text("Page 1")
    await expect(delivery_rows(page)).to_have_count(25)
    assert await shown_ids(page) == first_page


async def test_an_attempt_shows_the_request_headers_it_sent_with_secrets_masked(
    page: Page, platform: Platform
):
    path = f"/headers/{uuid.uuid4().hex}"
    webhook = await create_webhook(platform, path, headers={"X-Team": "blue"})
    await platform.trigger("participant.joined")
    [delivered] = await settled_deliveries(platform, webhook["id"], 1, "success")
    [request] = platform.receiver.received[path]

    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries/{delivered['id']}")
    attempt = page.get_by_role("article", name="Attempt 1")
    await attempt.get_by_text("Request headers as sent").click()
    headers = attempt.get_by_role("table")

    def header(name: str):
        named = page.get_by_role("rowheader", name=name, exact=True)
        return headers.get_by_role("row").filter(has=named)

    await expect(header("webhook-id")).to_contain_text(request.headers["webhook-id"])
    await expect(header("webhook-signature")).to_contain_text("v1,****")
    await expect(header("X-Team")).to_contain_text("****")
    await expect(headers).not_to_contain_text("blue")


async def test_from_and_to_show_one_days_deliveries_in_the_users_time_zone_and_stay_in_the_url(
    page: Page, platform: Platform, platform_database: str
):
    # Tokyo is UTC+9 all year: a UTC day runs from 09:00 to 09:00 the next day there.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    webhook = await create_webhook(platform, f"/days/{uuid.uuid4().hex}")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_before, day = today - timedelta(days=2), today - timedelta(days=1)
    stamps = [day_before + timedelta(hours=12, minutes=n) for n in range(3)]
    stamps += [day + timedelta(hours=h) for h in (0, 23)]  # the day's first hour and last
    ids = [uuid.uuid4() for _ in stamps]
    connection = await asyncpg.connect(platform_database)
    try:
        await connection.executemany(
            "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
            " payload, status, attempts, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, 'participant.joined', '{}', 'success', 1, $5, $5)",
            [
                (i, uuid.UUID(webhook["id"]), uuid.UUID(platform.account_id), f"evt-{i}", at)
                for i, at in zip(ids, stamps, strict=True)
            ],
        )
    finally:
        await connection.close()
    days_ids = [f"Delivery {i}" for i in reversed(ids[3:])]

    filters = page.get_by_role("group", name="Filter deliveries")
    since, until = filters.get_by_label("From"), filters.get_by_label("To")
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries")
    await expect(delivery_rows(page)).to_have_count(5)
    await expect(page.get_by_text("Times in Asia/Tokyo")).to_be_visible()
    await since.fill(f"{day.date().isoformat()}T09:00")
    await until.fill(f"{today.date().isoformat()}T09:00")
    await expect(delivery_rows(page)).to_have_count(2)
    assert await shown_ids(page) == days_ids
    # In the URL as the API takes it: UTC instants.
    query = parse_qs(urlsplit(page.url).query)
    assert query["since"] == [day.strftime("%Y-%m-%dT%H:%M:%S.000Z")]
    assert query["until"] == [today.strftime("%Y-%m-%dT%H:%M:%S.000Z")]

    await page.get_by_label("Status", exact=True).select_option("failed")
    await expect(
        page.get_by_text("No deliveries with status failed in this window yet.")
    ).to_be_visible()
    await page.get_by_label("Status", exact=True).select_option("")
    link = page.url
    await page.reload()  # a reload, or the link elsewhere, keeps the filter
    await expect(delivery_rows(page)).to_have_count(2)
    assert await shown_ids(page) == days_ids
    await expect(since).to_have_value(f"{day.date().isoformat()}T09:00")
    await expect(until).to_have_value(f"{today.date().isoformat()}T09:00")
    await page.goto("/console/webhooks")
    await page.goto(link)
    await expect(delivery_rows(page)).to_have_count(2)

    await until.fill("")  # cleared: no bound on that side
    await expect(delivery_rows(page)).to_have_count(2)
    assert "until" not in parse_qs(urlsplit(page.url).query)
    await since.fill(f"{day_before.date().isoformat()}T21:00")
    await expect(delivery_rows(page)).to_have_count(5)


async def test_a_link_whose_window_the_api_refuses_shows_the_field_it_names(
    page: Page, platform: Platform
):
    webhook = await create_webhook(platform, f"/refused/{uuid.uuid4().hex}")
    await sign_in(page, platform.owner_key)
    window = "since=2026-05-29T10:00:00Z&until=2026-05-29T09:00:00Z"
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries?{window}")
    refusal = page.get_by_role("alert").filter(has_text="The deliveries could not be read")
    await expect(refusal).to_contain_text("until: must be later than since")
    await page.goto(f"/console/webhooks/{webhook['id']}/deliveries?since=%3Cb%3Eyesterday%3C/b%3E")
    refusal = page.get_by_role("alert").filter(has_text="The deliveries could not be read")
    await expect(refusal).to_contain_text("since: must be an RFC 3339 date-time")
    await expect(page.locator("b", has_text="yesterday")).to_have_count(0)
