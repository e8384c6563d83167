"""Signing in to the console with an API key, in Chromium: the key lives in the tab's
sessionStorage only, a reload and a deep link keep the session, signing out forgets it, and
the page is served under the strict Content-Security-Policy, which the browser enforces."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PageLog, Platform, shot, sign_in
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

TOKEN_KEY = "roomhooks.console.token"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


async def kept_token(page: Page) -> str | None:
    return await page.evaluate(f"() => sessionStorage.getItem('{TOKEN_KEY}')")


async def local_storage(page: Page) -> dict[str, str]:
    return await page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")


async def test_signing_in_with_an_api_key_opens_the_webhooks_page(page: Page, platform: Platform):
    await page.goto("/console/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await shot(page, "sign-in")
    await sign_in(page, platform.owner_key)
    await expect(page).to_have_url(f"{platform.url}/console/webhooks")
    await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    assert await kept_token(page) == platform.owner_key
    await shot(page, "webhooks-empty")


async def test_a_reload_keeps_the_tab_signed_in_and_a_deep_link_opens_its_page(
    page: Page, platform: Platform
):
    await sign_in(page, platform.owner_key)
    await page.reload()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()

    await page.goto("/console/catalog")
    await page.reload()
    await expect(page).to_have_url(f"{platform.url}/console/catalog")
    await expect(page.get_by_role("heading", name="Event catalog")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def test_signing_out_clears_the_tab_and_local_storage_never_holds_the_key(
    page: Page, platform: Platform
):
    await sign_in(page, platform.member_key)
    assert platform.member_key not in str(await local_storage(page))

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await kept_token(page) is None
    assert platform.member_key not in str(await local_storage(page))
    await page.reload()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


async def test_another_tab_is_not_signed_in_by_this_one(page: Page, platform: Platform):
    await sign_in(page, platform.owner_key)
    other_tab = await page.context.new_page()
    await other_tab.goto("/console/webhooks")
    await expect(other_tab.get_by_label("API key")).to_be_visible()
    assert await kept_token(other_tab) is None
    await other_tab.close()


async def test_a_wrong_key_shows_the_apis_refusal_and_keeps_nothing(page: Page, platform: Platform):
    wrong = "rh_" + "0" * 40
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.url}/v1/me", headers={"Authorization": f"Bearer {wrong}"}) as answer,
    ):
        assert answer.status == 401
        refusal = (await answer.json())["error"]["message"]

    await page.goto("/console/")
    await page.get_by_label("API key").fill(wrong)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text(refusal)
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert await kept_token(page) is None
    await shot(page, "sign-in-refused")


async def test_the_page_is_served_with_the_strict_policy_and_chromium_enforces_it(
    page: Page, page_log: PageLog
):
    response = await page.goto("/console/webhooks")
    assert response is not None and response.status == 200
    headers = response.headers
    assert headers["content-security-policy"] == POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    await expect(page.get_by_label("API key")).to_be_visible()
    assert page_log.violations == []  # the built app itself needs nothing the policy refuses

    # An injected inline script is refused, and the harness hears of it.
    page_log.allow("script-src")
    ran = await page.evaluate(
        """() => {
          const s = document.createElement('script');
          s.textContent = 'window.__injected = true';
          document.body.append(s);
          return window.__injected === true;
        }"""
    )
    assert ran is False

    async def reported() -> list[str]:
        return page_log.violations

    assert "script-src" in (await eventually(reported))[0]
