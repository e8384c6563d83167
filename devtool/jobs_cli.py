"""`roomhooks jobs get`: a background job of the account (a recovery) and how far it has come,
through the API; and waiting for one to end (`deliveries recover --wait`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from devtool.api_args import add_action, uuid_id
from devtool.api_client import RegistryApi, call_account, open_api
from devtool.cli_support import EXIT_UNAVAILABLE, CliError
from devtool.output import cell, record_table, show

POLL_INTERVAL_S = 1.0
# How long `--wait` waits by default: a recovery of thousands of deliveries takes minutes.
WAIT_TIMEOUT_S = 600.0
ENDED = ("done", "failed")


def add_jobs_commands(commands: Any) -> None:
    group = commands.add_parser("jobs", help="the account's background jobs (through the API)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = add_action(actions, "get", "a job (a recovery): its status, total and done")
    get.add_argument("job", type=uuid_id, metavar="JOB_ID")


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until the job is done (exit 0) or failed (exit 1), its progress on stderr",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=WAIT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"with --wait: give up (exit 1) after this long (default: {WAIT_TIMEOUT_S:g})",
    )


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} is not above 0")
    return number


def progress_line(job: Mapping[str, Any]) -> str:
    """`job <id>: running 3/10` (pure)."""
    return f"job {cell(job['id'])}: {cell(job['status'])} {job['done']}/{job['total']}"


def ended_job(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The job when it has ended well, None while it runs; a failed job is CliError (exit 1)."""
    if job["status"] == "failed":
        reason = cell(job.get("error") or "no reason given")
        raise CliError(f"job {cell(job['id'])} failed: {reason}", EXIT_UNAVAILABLE)
    return job if job["status"] == "done" else None


async def wait_for_job(
    api: RegistryApi, job: Mapping[str, Any], *, timeout_s: float, progress: TextIO
) -> dict[str, Any]:
    """Poll the job every second until done (its `data`) or failed (CliError, exit 1); past
    `timeout_s`, CliError (exit 1) saying where it stood. `job` is the job as ordered: its
    line comes first, then each change of progress is a line on `progress`."""
    path = await api.account_path("jobs", job["id"])
    deadline = time.monotonic() + timeout_s
    said = progress_line(job)
    print(said, file=progress, flush=True)
    while True:
        data = await api.call("GET", path)
        line = progress_line(data["job"])
        if line != said:
            print(line, file=progress, flush=True)
            said = line
        if ended_job(data["job"]) is not None:
            return data
        if time.monotonic() + POLL_INTERVAL_S > deadline:
            raise CliError(
                f"{line} after {timeout_s:g} s: gave up waiting (`roomhooks jobs get"
                f" {cell(job['id'])}` shows it later)",
                EXIT_UNAVAILABLE,
            )
        await asyncio.sleep(POLL_INTERVAL_S)


async def get_job(args: argparse.Namespace) -> int:
    data = await call_account(args.account, "GET", "jobs", args.job)
    return show(data, args.json, lambda d: record_table(d["job"]))


async def wait_and_show(args: argparse.Namespace, job: Mapping[str, Any]) -> int:
    """`--wait`: the job as ordered, its progress, and then the ended job shown as `jobs get`
    shows it."""
    async with open_api(args.account, os.environ) as api:
        data = await wait_for_job(api, job, timeout_s=args.timeout, progress=sys.stderr)
    return show(data, args.json, lambda d: record_table(d["job"]))


JOBS_COMMANDS = {("jobs", "get"): get_job}
