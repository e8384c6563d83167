"""Shared by the sandbox tests (no tests here): a sandbox's hosts seen from outside, through
its public reads (`host_for`) and runs only."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.workflow_runner.sandbox import Sandbox
from services.workflow_runner.sandbox.host import Host
from tests.support.polling import eventually
from tests.support.sandbox import LOG_NEW_PARTICIPANTS, ORGANIZATION, MemoryBindings, request


def gone(host: Host) -> Callable[[], Awaitable[bool]]:
    """The host's process has exited (and was reaped)."""

    async def probe() -> bool:
        return host.died.is_set() and not Path(f"/proc/{host.pid}").exists()

    return probe


async def usable_host(sandbox: Sandbox, organization: str = ORGANIZATION) -> Host:
    """The host new runs of the organization go to, once any replacement has started; when
    the organization has none, a run of the guide's logging workflow places one."""
    if sandbox.host_for(organization) is None:
        placed = await sandbox.run(
            request(LOG_NEW_PARTICIPANTS, workflow="wf-benign",
                    run=f"place-{uuid.uuid4().hex[:8]}", organization=organization),
            MemoryBindings(),
        )  # fmt: skip
        assert placed.status == "success", placed.error

    async def usable() -> Host | None:
        host = sandbox.host_for(organization)
        return host if host is not None and host.usable else None

    return await eventually(usable, timeout_s=10)
