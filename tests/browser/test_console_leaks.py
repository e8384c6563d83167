"""No key, token or secret where it must not be, after a console session and a portal session:
not in any URL the browser asked for, not in a Referer, not in the browser's storage after
signing out, and not in anything the platform's services printed (every log line of the
`roomhooks dev` the browser tests run against)."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page, Request, expect

from tests.browser.conftest import Platform, sign_in
from tests.browser.test_console_portal import TOKEN_KEY, call, portal_link, webhook
from tests.support.devstack import READY_LINE
from tests.support.leaks import WINDOW, Needles, api_key_spellings, webhook_secret_spellings

pytestmark = pytest.mark.integration


def token_spellings(token: str) -> set[str]:
    """A portal token (`rhl_...`, `rhp_...`) as itself and as any long run of its random part."""
    body = token.split("_", 1)[1]
    return {token} | {body[i : i + WINDOW] for i in range(len(body) - WINDOW + 1)}


def services_output(lines: list[str]) -> list[str]:
    """What the stack printed but its own banner, which shows the development keys on purpose
    (devtool/banner.py): every service's log lines."""
    start = next(i for i, line in enumerate(lines) if line.strip() == "roomhooks dev stack")
    end = next(i for i, line in enumerate(lines) if line.startswith(READY_LINE))
    assert start < end
    return lines[:start] + lines[end + 1 :]


async def storage(page: Page) -> str:
    return await page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )


async def test_keys_tokens_and_secrets_stay_out_of_urls_storage_and_the_servers_logs(
    page: Page, platform: Platform
) -> None:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    tag = uuid.uuid4().hex[:8]

    await sign_in(page, platform.owner_key)
    made = await call(
        platform,
        platform.owner_key,
        "POST",
        f"/v1/accounts/{platform.account_id}/webhooks",
        {"url": "http://127.0.0.1:9/leaks", "events": ["participant.joined"], "name": tag},
    )
    secret = made["webhook"]["secret"]
    await page.goto(f"/console/webhooks/{made['webhook']['id']}")
    await expect(page.get_by_role("heading", name=tag).first).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    signed_out = await storage(page)

    fragment = await portal_link(platform)
    link_token = fragment.removeprefix("#token=")
    await page.goto(f"/console/portal{fragment}")
    await expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    session_token = await page.evaluate(f"() => sessionStorage.getItem('{TOKEN_KEY}')")
    assert session_token and session_token.startswith("rhp_")
    assert "token=" not in page.url
    await webhook(platform, platform.account_id, platform.owner_key, f"after {tag}")

    needles = Needles()
    needles.add("owner key", api_key_spellings(platform.owner_key))
    needles.add("webhook secret", webhook_secret_spellings(secret))
    needles.add("portal link token", token_spellings(link_token))
    needles.add("portal session token", token_spellings(session_token))
    for request in requests:
        sent = [request.url, request.headers.get("referer") or ""]
        assert needles.find("\n".join(sent)) == [], request.url
    assert needles.find(signed_out) == [], "kept in the browser after signing out"
    printed = "\n".join(services_output(platform.stack.stdout + platform.stack.stderr))
    assert printed, "the platform printed nothing: the scan would prove nothing"
    found = needles.find(printed)
    assert found == [], [printed[max(0, at - 200) : at + 60] for _, at in found[:1]]
