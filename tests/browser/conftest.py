"""The console in a real browser: one `roomhooks dev` platform and one headless Chromium for
the whole run, a new browser context (its own storage) for each test.

- `platform`: the running stack (registry, fanout, delivery, runner) with an OWNER key, a
  MEMBER key and another account's OWNER key, `trigger(event)` to publish a sample event
  (`roomhooks trigger`) and a `receiver` for webhooks to point at.
- `page`: a page whose console errors, uncaught errors and Content-Security-Policy violations
  fail the test at teardown (`page_log.allow(...)` for what a test expects).
- `sign_in(page, key)` through the form's "API key" field; `shot(page, name)` writes
  docs/screenshots/<name>.png when ROOMHOOKS_SCREENSHOTS=1.

A console that is not built or a Chromium that is not installed fails the run, naming the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from services.registry.settings import DEFAULT_CONSOLE_DIR
from shared.db import with_database
from tests.support.devstack import (
    REPO_ROOT,
    Stack,
    clean_environ,
    dev_environ,
    ready_stack,
    run_cli,
)
from tests.support.receiver import Receiver

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Playwright,
        async_playwright,
        expect,
    )
except ImportError as exc:  # the dev extras were not installed
    raise ImportError(
        "the browser tests need Playwright for Python: pip install -e '.[dev]' (make test does)"
    ) from exc

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
# How long a console page may take to show what a test waits for (an API round trip or two).
UI_TIMEOUT_MS = 10_000
# Chromium's line for an answer of 4xx to fetch(): the API refusing is a state the console
# shows, and the tests assert on what it shows.
REFUSED_REQUEST = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d"
)
CSP_REFUSAL = re.compile(r"Content Security Policy")

expect.set_options(timeout=UI_TIMEOUT_MS)


@dataclass(frozen=True)
class Platform:
    """A running `roomhooks dev` and what a test needs to drive it."""

    url: str
    account_id: str
    owner_key: str
    member_key: str
    other_account_id: str
    other_owner_key: str
    receiver: Receiver
    stack: Stack = field(repr=False)

    async def cli(self, *args: str) -> str:
        return await roomhooks(self.stack, *args)

    async def trigger(self, event: str, *changes: str, account_id: str | None = None) -> str:
        """Publish a sample `event` (`--set PATH=VALUE` changes); its id."""
        sets = [arg for change in changes for arg in ("--set", change)]
        account = account_id or self.account_id
        return await self.cli("trigger", event, "--account", account, *sets)


async def roomhooks(stack: Stack, *args: str) -> str:
    """stdout of a `roomhooks` command against `stack` (its run.env), which must succeed."""
    env = {**clean_environ(), "ROOMHOOKS_DEV_STATE_DIR": str(stack.state_dir)}
    done = await run_cli(*args, env=env)
    assert done.process.returncode == 0, done.output()
    return "\n".join(done.stdout).strip()


def require_console_build() -> Path:
    if not (DEFAULT_CONSOLE_DIR / "index.html").is_file():
        pytest.fail(
            f"the console is not built ({DEFAULT_CONSOLE_DIR} has no index.html):"
            " run `make console`",
            pytrace=False,
        )
    return DEFAULT_CONSOLE_DIR


def require_chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` package"
            " (apt-get install chromium; `make test` does it)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def platform_database(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """A migrated database of the browser tests' own, for the whole run."""
    name = f"rh_browser_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(postgres_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, platform_database: str
) -> AsyncIterator[Platform]:
    require_chromium()
    run_dir = tmp_path_factory.mktemp("browser")
    # A copy of the build: a `make console` while the tests run empties console/dist first.
    console_dir = shutil.copytree(require_console_build(), run_dir / "console")
    state_dir = run_dir / ".roomhooks"
    env = dev_environ(
        state_dir,
        DATABASE_URL=platform_database,
        ROOMHOOKS_REGISTRY_CONSOLE_DIR=str(console_dir),
    )
    receiver = Receiver()
    await receiver.start()
    try:
        async with ready_stack(env, state_dir) as stack:
            saved = stack.run_env()
            other = await roomhooks(stack, "accounts", "create", "--name", "another")
            other_key = await roomhooks(
                stack, "keys", "create", "--role", "OWNER", "--account", other
            )
            yield Platform(
                url=saved["ROOMHOOKS_API_URL"],
                account_id=saved["ROOMHOOKS_ACCOUNT_ID"],
                owner_key=saved["ROOMHOOKS_OWNER_TOKEN"],
                member_key=saved["ROOMHOOKS_MEMBER_TOKEN"],
                other_account_id=other,
                other_owner_key=other_key,
                receiver=receiver,
                stack=stack,
            )
    finally:
        await receiver.stop()


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    chromium = require_chromium()
    # --no-sandbox: Chromium's sandbox cannot start as root (the CI machines run as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    browser = await playwright.chromium.launch(
        executable_path=str(chromium), headless=True, args=args
    )
    yield browser
    await browser.close()


@dataclass
class PageLog:
    """What a page said: console messages, uncaught errors, CSP violations."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """A console error, page error or violation matching `pattern` is expected here."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        line = f"{message.type}: {message.text}"
        self.messages.append(line)
        if message.type == "error" and CSP_REFUSAL.search(message.text):
            self.violations.append(message.text)
        elif message.type == "error" and not REFUSED_REQUEST.match(message.text):
            self.errors.append(message.text)

    def on_violation(self, description: str) -> None:
        self.violations.append(description)

    def problems(self) -> list[str]:
        found = [f"uncaught or console error: {e}" for e in self.errors]
        found += [f"Content-Security-Policy violation: {v}" for v in self.violations]
        return [p for p in found if not any(a.search(p) for a in self.allowed)]


# Reported through a binding, which CSP does not govern (Playwright injects it, as this).
REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.__rhCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'}` +
    ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
});
"""


@pytest.fixture
async def context(browser: Browser, platform: Platform) -> AsyncIterator[BrowserContext]:
    """A fresh context (its own sessionStorage and localStorage) on the platform's URL."""
    context = await browser.new_context(
        base_url=platform.url, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    yield context
    await context.close()


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
async def page(context: BrowserContext, page_log: PageLog) -> AsyncIterator[Page]:
    await context.expose_function("__rhCspViolation", page_log.on_violation)
    await context.add_init_script(REPORT_VIOLATIONS)
    page = await context.new_page()
    page.on("console", page_log.on_console)
    page.on("pageerror", lambda error: page_log.errors.append(f"{error.name}: {error.message}"))
    yield page
    problems = page_log.problems()
    if problems:
        pytest.fail(
            "the page reported:\n  "
            + "\n  ".join(problems)
            + "\nconsole:\n  "
            + "\n  ".join(page_log.messages[-20:]),
            pytrace=False,
        )


async def sign_in(page: Page, key: str) -> None:
    """Sign in through the form, and wait for the signed-in console (its "Sign out")."""
    await page.goto("/console/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def screenshots_wanted() -> bool:
    return os.environ.get("ROOMHOOKS_SCREENSHOTS") == "1"


# A long page (the catalog, a big form) is cut here: the README shows its top.
SCREENSHOT_MAX_HEIGHT = 1400


async def shot(page: Page, name: str) -> Path | None:
    """docs/screenshots/<name>.png, only when ROOMHOOKS_SCREENSHOTS=1 (`make screenshots`)."""
    if not screenshots_wanted():
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = await page.evaluate("document.documentElement.scrollHeight")
    width = page.viewport_size["width"] if page.viewport_size else 1280
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, SCREENSHOT_MAX_HEIGHT)}
    await page.screenshot(path=str(path), full_page=True, clip=clip)
    return path
