"""The console's workflow pages in Chromium: a save refused by the code check names the line and
column and marks that line in the editor; executions of a published event show with their
result and logs (as text); a saved edit is a new version whose predecessor reads back; enable
and disable; a MEMBER key sees the code but no control that writes."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Platform, shot, sign_in

pytestmark = pytest.mark.integration

# Line 3 holds the syntax error; the code check names it (column 13, after `const y = `).
BROKEN = "export default async function (event) {\n  const x = 1;\n  const y = ;\n  return x;\n}\n"


async def api(platform: Platform, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """`data` of an OWNER call that must succeed."""
    url = f"{platform.url}/v1/accounts/{platform.account_id}{path}"
    headers = {"Authorization": f"Bearer {platform.owner_key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as answer,
    ):
        payload = await answer.json()
        assert answer.status < 300, payload
        return payload["data"]


async def create_workflow(platform: Platform, name: str, code: str, **more: Any) -> dict:
    body = {"name": name, "events": ["participant.joined"], "code": code, **more}
    return (await api(platform, "POST", "/workflows", body))["workflow"]


async def replace_code(page: Page, code: str) -> None:
    """Select all of the editor's text and type `code` over it (the harness fails the test on
    the CSP violation Chromium's own editing would cause here)."""
    editor = page.get_by_role("textbox", name="Code", exact=True)
    await editor.click()
    await page.keyboard.press("ControlOrMeta+a")
    await page.keyboard.insert_text(code)


async def test_a_syntax_error_on_save_is_named_and_marked_at_its_line(
    page: Page, platform: Platform
):
    name = f"broken {uuid.uuid4().hex[:8]}"
    await sign_in(page, platform.owner_key)
    await page.goto("/console/workflows/new")
    await page.get_by_label("Name").fill(name)
    await page.get_by_role("checkbox", name="participant.joined", exact=True).check()
    await expect(page.locator(".code-editor[data-ready=true]")).to_be_attached()
    await replace_code(page, BROKEN)
    await page.get_by_role("button", name="Create workflow").click()

    problem = page.locator("#wf-code-problem")
    await expect(problem).to_have_text("Line 3, column 13: SyntaxError: Expression expected")
    marked = page.locator(".cm-problemLine")
    await expect(marked).to_have_count(1)
    await expect(marked).to_have_text("  const y = ;")
    # the diagnostic itself: a gutter marker, and the range from the column to the line's end
    await expect(page.locator(".cm-lint-marker-error")).to_have_count(1)
    await expect(page.locator(".cm-lintRange-error")).to_have_text(";")
    await expect(page).to_have_url(f"{platform.url}/console/workflows/new")
    await shot(page, "workflow-editor-error")

    # Fixed, it saves and opens the workflow's page; the mark is gone.
    await replace_code(page, BROKEN.replace("const y = ;", "const y = 2;"))
    await page.get_by_role("button", name="Create workflow").click()
    await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    await expect(page.locator(".cm-problemLine")).to_have_count(0)
    await expect(page.locator(".cm-content")).to_contain_text("const y = 2;")


async def test_the_error_of_an_edit_in_typescript_is_marked_too_and_nothing_is_saved(
    page: Page, platform: Platform
):
    code = "export default async function (event: unknown): Promise<number> {\n  return 1;\n}\n"
    workflow = await create_workflow(platform, f"ts {uuid.uuid4().hex[:8]}", code, language="ts")
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/workflows/{workflow['id']}")
    await expect(page.get_by_label("Language")).to_have_value("ts")
    await expect(page.locator(".code-editor[data-ready=true]")).to_be_attached()

    await replace_code(page, "export default async function (event: unknown) {\n  return (;\n}\n")
    await page.get_by_role("button", name="Save", exact=True).click()

    await expect(page.locator("#wf-code-problem")).to_contain_text("Line 2, column")
    await expect(page.locator(".cm-problemLine")).to_have_text("  return (;")
    stored = (await api(platform, "GET", f"/workflows/{workflow['id']}"))["workflow"]
    assert (stored["version"], stored["code"]) == (1, code)


async def test_an_events_execution_shows_with_its_result_and_logs_as_text(
    page: Page, platform: Platform
):
    marker = f"<b>seen-{uuid.uuid4().hex[:8]}</b>"
    fetched = platform.receiver.url(f"/fetched/{uuid.uuid4().hex}")
    code = (
        "export default async function (event) {\n"
        f"  console.log({marker!r} + ' ' + event.event);\n"
        f"  await fetch({fetched!r});\n"
        f"  return {{ marker: {marker!r} }};\n"
        "}\n"
    )
    workflow = await create_workflow(platform, f"runs {uuid.uuid4().hex[:8]}", code)
    await platform.trigger("participant.joined")

    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/workflows/{workflow['id']}")
    executions = page.get_by_role("table").filter(has=page.get_by_text("Executions, page 1"))
    refresh = page.get_by_role("button", name="Refresh executions")
    success = executions.get_by_role("cell", name="success", exact=True)
    for _ in range(30):  # the runner records it within a few seconds; each refresh is a read
        if await success.count():
            break
        await refresh.click()
        await page.wait_for_timeout(500)
    await expect(success).to_have_count(1)
    await expect(executions).to_contain_text(marker)  # the result column, as text
    chart = page.get_by_role("figure").filter(has_text="Executions per status")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(
        page.get_by_text("1 execution: 0 running, 1 success, 0 error, 0 timeout")
    ).to_be_visible()
    await shot(page, "workflow")

    await executions.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", name="Execution", exact=True)).to_be_visible()
    logs = page.get_by_label("Logs")
    await expect(logs).to_contain_text(f"{marker} participant.joined")
    await expect(page.get_by_label("Result")).to_contain_text(marker)
    assert await page.locator("main b").count() == 0  # the customer's markup stayed text
    fetches = page.get_by_role("table", name="Fetches")
    await expect(fetches.locator("tbody tr")).to_have_count(1)
    await expect(fetches.locator("tbody tr td").nth(0)).to_have_text("GET")
    await expect(fetches.locator("tbody tr td").nth(1)).to_have_text(fetched)
    await expect(fetches.locator("tbody tr td").nth(2)).to_have_text("200")
    await shot(page, "workflow-execution")

    # The execution page is a deep link that survives a reload.
    await page.reload()
    await expect(page.get_by_label("Logs")).to_contain_text(marker)


async def test_a_saved_edit_is_a_new_version_and_the_old_one_reads_back(
    page: Page, platform: Platform
):
    first = "export default async function (event) {\n  return 'first';\n}\n"
    workflow = await create_workflow(platform, f"versions {uuid.uuid4().hex[:8]}", first)
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/workflows/{workflow['id']}")
    await expect(page.locator(".code-editor[data-ready=true]")).to_be_attached()

    await replace_code(page, first.replace("'first'", "'second'"))
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await expect(page.get_by_text("version 2", exact=False).first).to_be_visible()

    versions = page.get_by_role("table").filter(has=page.get_by_text("Versions, page 1"))
    await expect(versions.get_by_role("rowheader")).to_have_text(["2 (current)", "1"])
    await versions.get_by_role("button", name="Show version 1").click()
    old = page.get_by_role("textbox", name="Code of version 1")
    await expect(old).to_contain_text("return 'first';")
    await expect(old).to_have_attribute("contenteditable", "false")
    stored = (await api(platform, "GET", f"/workflows/{workflow['id']}"))["workflow"]
    assert (stored["version"], "'second'" in stored["code"]) == (2, True)


async def test_disable_and_enable_change_the_workflow(page: Page, platform: Platform):
    workflow = await create_workflow(
        platform, f"toggle {uuid.uuid4().hex[:8]}", "export default async () => 1;\n"
    )
    await sign_in(page, platform.owner_key)
    await page.goto(f"/console/workflows/{workflow['id']}")

    await page.get_by_role("button", name="Disable", exact=True).click()
    await expect(page.get_by_role("button", name="Enable", exact=True)).to_be_visible()
    assert (await api(platform, "GET", f"/workflows/{workflow['id']}"))["workflow"][
        "enabled"
    ] is False
    await page.get_by_role("button", name="Enable", exact=True).click()
    await expect(page.get_by_role("button", name="Disable", exact=True)).to_be_visible()
    assert (await api(platform, "GET", f"/workflows/{workflow['id']}"))["workflow"]["enabled"]

    await page.goto("/console/workflows")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=workflow["name"]))
    await expect(row).to_contain_text("enabled")
    await expect(row).to_contain_text("JavaScript")


async def test_a_member_reads_the_code_but_has_no_control_that_writes(
    page: Page, platform: Platform
):
    workflow = await create_workflow(
        platform, f"read only {uuid.uuid4().hex[:8]}", "export default async () => 'ro';\n"
    )
    await sign_in(page, platform.member_key)
    await page.goto("/console/workflows")
    await expect(page.get_by_role("link", name=workflow["name"])).to_be_visible()
    await expect(page.get_by_role("link", name="New workflow")).to_have_count(0)

    await page.goto(f"/console/workflows/{workflow['id']}")
    code = page.get_by_role("textbox", name="Code", exact=True)
    await expect(code).to_contain_text("'ro'")
    await expect(code).to_have_attribute("contenteditable", "false")
    for control in ("Save", "Disable", "Delete"):
        await expect(page.get_by_role("button", name=control, exact=True)).to_have_count(0)
    await expect(page.get_by_label("Name")).to_be_disabled()
