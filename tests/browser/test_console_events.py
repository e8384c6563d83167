"""The console's event log in Chromium: an accepted event and one fanout rejected at ingress
(with its reason) are listed; an event's page shows its payload pretty-printed, as text."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from devtool.publishing import send
from shared.kafka import Topics
from shared.settings import KafkaSettings
from tests.browser.conftest import Platform, shot, sign_in
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def logged(platform: Platform, **query: str) -> list[dict[str, Any]]:
    """A page of the account's event log, as the API answers it."""
    url = f"{platform.url}/v1/accounts/{platform.account_id}/events"
    headers = {"Authorization": f"Bearer {platform.owner_key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, params=query, headers=headers) as answer,
    ):
        assert answer.status == 200, await answer.text()
        return (await answer.json())["data"]["events"]


async def publish_without_room(platform: Platform, event_id: str) -> None:
    """A participant.joined with no room, as a broken room service would send it: fanout
    refuses it at ingress, and its organization id is readable, so the account's log has it."""
    kafka = KafkaSettings(bootstrap_servers=platform.stack.run_env()["KAFKA_BOOTSTRAP_SERVERS"])
    event = {
        "id": event_id,
        "event": "participant.joined",
        "timestamp": datetime.now(UTC).isoformat(),
        "organization_id": platform.account_id,
        "user": {"id": "user-001", "name": "Ada"},
    }
    await send(
        kafka, Topics.from_settings(kafka).events, platform.account_id, json.dumps(event).encode()
    )


async def test_the_log_lists_an_accepted_event_and_a_rejected_one_with_its_reason(
    page: Page, platform: Platform
):
    accepted_id = await platform.trigger("participant.joined")
    rejected_id = f"evt-no-room-{uuid.uuid4().hex[:8]}"
    await publish_without_room(platform, rejected_id)

    async def reason() -> str | None:
        rows = await logged(platform, status="rejected")
        return next((r["reason"] for r in rows if r["id"] == rejected_id), None)

    refused_because = await eventually(reason, timeout_s=30)
    await eventually(lambda: _has(platform, accepted_id), timeout_s=30)

    await sign_in(page, platform.owner_key)
    await page.goto("/console/events")
    table = page.get_by_role("table").filter(has=page.get_by_text("Events, page 1"))
    rejected = table.get_by_role("row").filter(has_text=rejected_id)
    await expect(rejected).to_contain_text("rejected")
    await expect(rejected).to_contain_text(refused_because)
    accepted = table.get_by_role("row").filter(has=page.get_by_role("link", name=accepted_id))
    await expect(accepted).to_contain_text("accepted")
    await expect(accepted).to_contain_text("participant.joined")
    await shot(page, "events")

    # Narrowed to the rejected ones, the accepted event is gone.
    await page.get_by_label("Status").select_option("rejected")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(table.get_by_role("link", name=accepted_id)).to_have_count(0)
    await expect(rejected).to_be_visible()


async def _has(platform: Platform, event_id: str) -> bool:
    return any(r["id"] == event_id for r in await logged(platform, status="accepted"))


async def test_an_events_page_shows_its_payload_as_text(page: Page, platform: Platform):
    hostile = "<script>alert(1)</script>"
    event_id = await platform.trigger("participant.joined", f"user.name={hostile}")
    await eventually(lambda: _has(platform, event_id), timeout_s=30)

    await sign_in(page, platform.owner_key)
    await page.goto("/console/events")
    await page.get_by_role("link", name=event_id).click()
    await expect(page).to_have_url(f"{platform.url}/console/events/{event_id}")
    payload = page.get_by_label("Payload")
    await expect(payload).to_contain_text(f'"id": "{event_id}"')  # pretty-printed
    await expect(payload).to_contain_text(hostile)
    await expect(page.get_by_role("heading", name="Webhooks reached")).to_be_visible()
    await expect(page.get_by_role("heading", name="Workflows reached")).to_be_visible()
    assert await page.locator("main script").count() == 0
    await shot(page, "event")

    # A deep link to the event survives a reload.
    await page.reload()
    await expect(page.get_by_label("Payload")).to_contain_text(hostile)
