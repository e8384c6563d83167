"""`--wait` on a job: the job as ordered is said first, then each change of its progress."""

from __future__ import annotations

import io

from devtool.jobs_cli import wait_for_job

ORDERED = {"id": "j1", "status": "queued", "done": 0, "total": 1}
DONE = {**ORDERED, "status": "done", "done": 1}


class FinishedBeforeTheFirstPoll:
    """A registry whose job was done by the time the CLI first asked."""

    async def account_path(self, *parts: str) -> str:
        return "/v1/accounts/a/" + "/".join(parts)

    async def call(self, method: str, path: str, **_: object) -> dict:
        assert (method, path) == ("GET", "/v1/accounts/a/jobs/j1")
        return {"job": DONE}


async def test_a_job_done_before_the_first_poll_still_says_it_was_queued() -> None:
    progress = io.StringIO()
    data = await wait_for_job(
        FinishedBeforeTheFirstPoll(),  # type: ignore[arg-type]
        ORDERED,
        timeout_s=5,
        progress=progress,
    )
    assert data == {"job": DONE}
    assert progress.getvalue().splitlines() == ["job j1: queued 0/1", "job j1: done 1/1"]
