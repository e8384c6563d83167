"""`roomhooks jobs get` and `deliveries recover --wait` against the served registry. No delivery
service runs here: the test writes the delivery service's progress row (delivery.recoveries)
itself, as that service would, to end the job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_cli import run_cli
from tests.integration.test_cli_deliveries import seeded
from tests.integration.test_cli_webhooks import env, failed, fields, succeeded
from tests.support.tenants import Seeded

pytestmark = pytest.mark.integration

__all__ = ["env", "seeded"]  # fixtures

SINCE = "2020-01-01T00:00:00Z"


async def _job_ids(pool: asyncpg.Pool, webhook_id: str) -> list:
    rows = await pool.fetch("SELECT id FROM registry.jobs WHERE webhook_id = $1", webhook_id)
    return [r["id"] for r in rows]


async def _ordered_job(pool: asyncpg.Pool, webhook_id: str, before: list) -> asyncpg.Record:
    """The recovery job the command ordered (not one of `before`), once the registry has it."""
    async with asyncio.timeout(30):
        while True:
            job = await pool.fetchrow(
                "SELECT * FROM registry.jobs WHERE webhook_id = $1 AND NOT id = ANY($2)",
                webhook_id,
                before,
            )
            if job is not None:
                return job
            await asyncio.sleep(0.1)


async def _progress(pool: asyncpg.Pool, job: asyncpg.Record, status: str, error: str | None):
    await pool.execute(
        "INSERT INTO delivery.recoveries (job_id, webhook_id, organization_id, since, until,"
        " status, marked, done, exhausted, error, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 1, 1, true, $7, now(), now())",
        job["id"], job["webhook_id"], job["organization_id"], job["since"], job["until"],
        status, error,
    )  # fmt: skip


async def test_jobs_get_shows_the_jobs_status_total_and_done(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    recover = ["deliveries", "recover", seeded.webhook["id"], "--since", SINCE]
    ordered = fields(succeeded(await run_cli(recover, env=env, cwd=tmp_path)))

    job = fields(succeeded(await run_cli(["jobs", "get", ordered["id"]], env=env, cwd=tmp_path)))

    assert (job["id"], job["status"], job["done"]) == (ordered["id"], "queued", "0")
    assert job["total"] == ordered["total"]


@pytest.mark.parametrize(
    ("status", "error", "code"), [("done", None, 0), ("failed", "its webhook was deleted", 1)]
)
async def test_recover_wait_ends_with_the_job(
    env: dict[str, str],
    tmp_path: Path,
    seeded: Seeded,
    pool: asyncpg.Pool,
    status: str,
    error: str | None,
    code: int,
) -> None:
    argv = ["deliveries", "recover", seeded.webhook["id"], "--since", SINCE, "--wait"]
    before = await _job_ids(pool, seeded.webhook["id"])
    waiting = asyncio.create_task(run_cli([*argv, "--timeout", "50"], env=env, cwd=tmp_path))
    job = await _ordered_job(pool, seeded.webhook["id"], before)
    await _progress(pool, job, status, error)

    result = await waiting

    assert result.code == code, result
    lines = result.stderr.splitlines()
    assert lines[0] == f"job {job['id']}: queued 0/{job['total']}"
    if status == "done":
        assert lines[1:] == [f"job {job['id']}: done 1/1"]
        assert fields(result.stdout)["status"] == "done"
    else:
        assert lines[1:] == [
            f"job {job['id']}: failed 1/1",
            f"roomhooks: error: job {job['id']} failed: {error}",
        ]


async def test_recover_wait_gives_up_after_its_timeout(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    argv = ["deliveries", "recover", seeded.webhook["id"], "--since", SINCE, "--wait"]

    result = await run_cli([*argv, "--timeout", "0.5"], env=env, cwd=tmp_path)

    assert result.code == 1
    *progress, last = result.stderr.splitlines()
    job_id = progress[0].split()[1].rstrip(":")
    assert progress == [f"job {job_id}: queued 0/0"]
    assert last.startswith(f"roomhooks: error: job {job_id}: queued 0/0 after 0.5 s: gave up")


async def test_an_unknown_job_exits_1_and_a_bad_timeout_2(
    env: dict[str, str], tmp_path: Path, seeded: Seeded
) -> None:
    missing = "6f1c2f7e-2a55-4c3e-9f57-1b0c6a8e1d11"
    unknown = await run_cli(["jobs", "get", missing], env=env, cwd=tmp_path)
    argv = ["deliveries", "recover", seeded.webhook["id"], "--since", SINCE, "--wait"]
    bad = await run_cli([*argv, "--timeout", "0"], env=env, cwd=tmp_path)

    assert "404 not_found" in failed(unknown, 1)
    assert failed(bad, 2).startswith("--timeout: 0 is not above 0")
