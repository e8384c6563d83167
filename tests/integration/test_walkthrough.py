"""The README's walk-through, run as written on a `roomhooks dev` of the test's own.

Its `sh` blocks run in order as one `bash -e` script, in a folder laid out like a checkout
(`.roomhooks/` is the stack's state folder, `.venv` this checkout's), with the receiver's port
9000 moved to a free one. Then what the README says it did is checked through `listen`'s output
and the API: the delivery verified and printed, its signed body in the log, the event log's
entry, the recovered deliveries, and the rotated secret signing beside the old one.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.dev_listen import (
    Printed,
    delivered,
    indexed_webhooks,
    listening,
    printed_deliveries,
    printed_once,
)
from tests.support.devstack import REPO_ROOT, Stack, clean_environ, dev_environ, ready_stack
from tests.support.readme_walkthrough import (
    bash_script,
    fenced_blocks,
    section,
    walkthrough_blocks,
)
from tests.support.services import free_port
from tests.support.shell_script import Script
from tests.support.shell_script import bash_script as run_bash

pytestmark = pytest.mark.integration

# test_cli_on_dev_stack.py takes its fixtures and listen helpers from here.
__all__ = ["delivered", "fanout_health_port", "indexed_webhooks", "listening", "stack"]

README = REPO_ROOT / "README.md"
README_PORT = "9000"  # the port the README's listen and webhook URLs use
ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review"}
SCRIPT_TIMEOUT_S = 240.0
# What the walk-through keeps in shell variables, written out after its last block.
VARIABLES = ("W", "SECRET", "NEW_SECRET", "EVENT", "D", "OUTAGE", "JOB", "WF")
# A failing command names itself and its line in the script (the README's line is above it).
ON_ERROR = "trap 'echo \"walk-through: $BASH_COMMAND exited $? (script line $LINENO)\" >&2' ERR"


@pytest.fixture
def fanout_health_port() -> int:
    return free_port()


@pytest.fixture
async def stack(tmp_path: Path, database_url: str, fanout_health_port: int) -> AsyncIterator[Stack]:
    """`roomhooks dev` on the test's own database and ports, its state in `checkout/.roomhooks`."""
    state_dir = tmp_path / "checkout" / ".roomhooks"
    env = dev_environ(
        state_dir,
        DATABASE_URL=database_url,
        ROOMHOOKS_FANOUT_HEALTH_PORT=str(fanout_health_port),
    )
    async with ready_stack(env, state_dir) as running:
        yield running


def walkthrough_script(markdown: str, *, port: int, variables_file: Path) -> str:
    """The walk-through's `sh` blocks with the receiver on `port`, then its variables saved."""
    blocks = walkthrough_blocks(markdown)
    text = bash_script(
        blocks,
        prologue=ON_ERROR,
        epilogue=(
            f'for name in {" ".join(VARIABLES)}; do printf \'%s=%s\\n\' "$name" "${{!name}}";'
            f" done > {shlex.quote(str(variables_file))}"
        ),
    )
    assert re.search(rf"\b{README_PORT}\b", text), f"the walk-through no longer uses {README_PORT}"
    return re.sub(rf"\b{README_PORT}\b", str(port), text)


def checkout_like(stack: Stack) -> Path:
    """The stack's state folder's parent, with this checkout's virtualenv as `.venv`."""
    folder = stack.state_dir.parent
    (folder / ".venv").symlink_to(sys.prefix)
    return folder


class Api:
    """The API as the walk-through's OWNER key sees it; `get` answers `data`."""

    def __init__(self, http: aiohttp.ClientSession, run_env: dict[str, str]) -> None:
        self._http = http
        self.account = run_env["ROOMHOOKS_ACCOUNT_ID"]
        self._base = f"{run_env['ROOMHOOKS_API_URL']}/v1/accounts/{self.account}"
        self._auth = {"Authorization": f"Bearer {run_env['ROOMHOOKS_OWNER_TOKEN']}"}

    async def call(self, method: str, path: str) -> dict[str, Any]:
        async with self._http.request(method, self._base + path, headers=self._auth) as answer:
            body = await answer.json()
            assert answer.status < 300, (method, path, answer.status, body)
            return body["data"]

    async def get(self, path: str) -> dict[str, Any]:
        return await self.call("GET", path)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def printed(script: Script) -> list[Printed]:
    return printed_deliveries(script.stdout)


async def check_the_first_delivery(script: Script, api: Api, saved: dict[str, str]) -> None:
    """See a delivery: listen printed it verified, as the README shows; the log holds the
    body that was signed; the redelivery came as attempt 2 of the same delivery."""
    w, d = saved["W"], saved["D"]
    attempts = {p.head["attempt"]: p for p in printed(script) if p.head["delivery"] == d}
    assert set(attempts) == {"1", "2"}, script.output()
    first = attempts["1"]
    assert first.verified and attempts["2"].verified, script.output()
    assert first.head["event"] == "participant.joined"
    assert first.body["id"] == saved["EVENT"]
    assert first.body["organization_id"] == api.account
    assert first.body["room"] == ROOM
    assert first.body["user"] == {"id": "user-001", "name": "Ada"}
    assert first.body["data"] == {"roomId": ROOM["id"], "userId": "user-001"}
    assert "never-forwarded" not in "\n".join(script.stdout)
    assert attempts["2"].text == first.text

    logged = await api.get(f"/webhooks/{w}/deliveries/{d}")
    delivery = logged["delivery"]
    assert (delivery["event_id"], delivery["status"]) == (saved["EVENT"], "success")
    # What was signed and sent: the compact JSON listen printed indented.
    assert delivery["payload"] == json.dumps(first.body, separators=(",", ":"))
    assert [a["status_code"] for a in logged["attempts"]] == [200, 200]

    event = await api.get(f"/events/{saved['EVENT']}")
    reached = {(r["webhook_id"], r["delivery_id"], r["status"]) for r in event["webhooks"]}
    assert reached == {(w, d, "success")}, event


async def check_the_recovery(script: Script, api: Api, saved: dict[str, str]) -> None:
    """Pause, and recover: the outage's deliveries failed after the 2, 2 s schedule (three
    attempts), the job sent each again, and listen printed each as attempt 4."""
    w = saved["W"]
    job = (await api.get(f"/jobs/{saved['JOB']}"))["job"]
    assert (job["status"], job["total"], job["done"]) == ("done", 3, 3), job
    window = (instant(saved["OUTAGE"]), instant(job["until"]))
    page = await api.get(f"/webhooks/{w}/deliveries?limit=100")
    outage = [d for d in page["deliveries"] if window[0] <= instant(d["created_at"]) < window[1]]
    assert [d["event"] for d in outage] == ["participant.joined"] * 3, page
    for delivery in outage:
        attempts = [p for p in printed(script) if p.head["delivery"] == delivery["id"]]
        assert [p.head["attempt"] for p in attempts] == ["4"], script.output()
        assert attempts[0].verified, script.output()
    settled = [(await api.get(f"/webhooks/{w}/deliveries/{d['id']}"))["delivery"] for d in outage]
    assert {(d["status"], d["attempts"]) for d in settled} == {("success", 4)}, settled


async def check_the_rest(api: Api, saved: dict[str, str]) -> None:
    """Manage webhooks (the second one deleted, the first one changed) and Workflows."""
    webhooks = (await api.get("/webhooks"))["webhooks"]
    assert [w["id"] for w in webhooks] == [saved["W"]], webhooks
    assert (webhooks[0]["name"], webhooks[0]["retry_schedule"]) == ("Design review", [2, 2])
    workflow = (await api.get(f"/workflows/{saved['WF']}"))["workflow"]
    assert workflow["enabled"] is False
    runs = (await api.get(f"/workflows/{saved['WF']}/executions"))["executions"]
    assert [r["status"] for r in runs] == ["success"], runs
    run = (await api.get(f"/workflows/{saved['WF']}/executions/{runs[0]['id']}"))["execution"]
    assert run["result"] == {"logged": True}
    assert run["logs"] == [
        {"level": "log", "message": "[participant.joined] User user-001 in room Design review"}
    ]


async def check_both_secrets_sign(
    script: Script, api: Api, saved: dict[str, str], secrets_file: Path
) -> None:
    """Rotate a secret: during the overlap a ping verifies with the new secret alone
    (X-Webhook-Signature-Next and a second webhook-signature entry) and with the old one alone
    (X-Webhook-Signature and the first entry). listen reads its file again on each request."""
    kept = secrets_file.read_text()
    assert kept.split() == [saved["SECRET"], saved["NEW_SECRET"]]
    for secret in (saved["NEW_SECRET"], saved["SECRET"]):
        secrets_file.write_text(f"{secret}\n")
        queued = await api.call("POST", f"/webhooks/{saved['W']}/test")
        ping = await printed_once(
            script.stdout,
            lambda p, delivery=queued["delivery_id"]: p.head["delivery"] == delivery,
            what=f"ping {queued['delivery_id']}",
            alive=lambda: None,
        )
        assert ping.verified, script.output()
    secrets_file.write_text(kept)


async def test_the_readme_walk_through_runs_as_written_and_does_what_it_says(
    stack: Stack, tmp_path: Path
) -> None:
    folder = checkout_like(stack)
    variables_file = tmp_path / "walkthrough-variables"
    script_file = tmp_path / "walkthrough.sh"
    script_file.write_text(
        walkthrough_script(
            README.read_text(encoding="utf-8"), port=free_port(), variables_file=variables_file
        )
    )
    async with (
        run_bash(script_file, cwd=folder, env=clean_environ()) as script,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        code = await script.finish(timeout_s=SCRIPT_TIMEOUT_S)
        assert code == 0, f"{script.output()}\n-- the script ({script_file})"
        saved = dict(line.split("=", 1) for line in variables_file.read_text().splitlines())
        assert all(saved.get(name) for name in VARIABLES), saved
        api = Api(http, stack.run_env())
        await check_the_first_delivery(script, api, saved)
        await check_the_recovery(script, api, saved)
        await check_the_rest(api, saved)
        await check_both_secrets_sign(script, api, saved, folder / ".roomhooks/listen-secrets")


# --- the extraction -----------------------------------------------------------------------

MARKDOWN = """# Title

## Walk-through

```sh
echo one
```

```json
{"shown": true}
```

<!-- walkthrough: skip: a reference, not a step -->
```sh
echo skipped
```

### A sub-section

```sh
echo two
```

## Next

```sh
echo not in the section
```
"""


def test_runs_the_sh_blocks_of_the_section_only_in_order_and_not_those_marked_skip() -> None:
    blocks = walkthrough_blocks(MARKDOWN)
    assert [(b.text, b.line) for b in blocks] == [("echo one", 5), ("echo two", 20)]
    script = bash_script(blocks, prologue="set -u", epilogue="echo done")
    assert script.splitlines() == [
        "# before the walk-through",
        "set -u",
        "",
        "# README.md line 5",
        "echo one",
        "",
        "# README.md line 20",
        "echo two",
        "",
        "# after the walk-through",
        "echo done",
    ]


def test_a_skip_needs_a_reason_and_a_fence_its_end() -> None:
    first_line, lines = section(
        MARKDOWN.replace("skip: a reference, not a step", "skip:"), "## Walk-through"
    )
    with pytest.raises(ValueError, match="a skip without a reason"):
        fenced_blocks(lines, first_line)
    with pytest.raises(ValueError, match="never closed"):
        fenced_blocks(["```sh", "echo open"])


@pytest.mark.parametrize("fence", ["```", "```bash"])
def test_a_fence_neither_run_nor_shown_is_refused(fence: str) -> None:
    with pytest.raises(ValueError, match="to run it"):
        walkthrough_blocks(MARKDOWN.replace("```json", fence))


def test_the_readme_skips_only_the_cli_reference() -> None:
    first_line, lines = section(README.read_text(encoding="utf-8"), "## Walk-through")
    skipped = [b for b in fenced_blocks(lines, first_line) if b.skip_reason is not None]
    assert [b.language for b in skipped] == ["sh"]
    assert "roomhooks workflows create" in skipped[0].text
