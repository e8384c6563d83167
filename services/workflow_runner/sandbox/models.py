"""What the sandbox takes and gives: settings, a run request, its outcome, and the Protocol the
caller implements to answer a run's binding calls and fetches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["js", "ts"]
Status = Literal["success", "error", "timeout"]

# The binding methods a workflow can call; "fetch" travels the same way but goes to
# Bindings.fetch.
BINDING_METHODS = frozenset(
    {"store.get", "store.getAll", "room.get", "room.getUsers", "files.list"}
)


class SandboxSettings(BaseModel):
    """Limits of the sandbox and of one run. A plain model: the runner nests it in its settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Deno host processes placed on organizations, at most (an idle one is evicted, least
    # recently used first, for an organization that needs one); beside them, the spare.
    max_hosts: int = Field(default=8, ge=1, le=64)
    # How long a run of an organization without a host waits for one to become idle when all
    # max_hosts carry runs (then SandboxUnavailable: the runner tries it again).
    host_wait_s: float = Field(default=10.0, gt=0)
    wall_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # A run whose Worker keeps its event loop blocked (no turn of the loop: a synchronous loop)
    # while its thread uses this much CPU time is stopped, as Cloudflare Workers' CPU limit
    # does (or blocked ten times as long in wall time: host.ts); its host is then killed
    # soon after, as terminate() does not stop the thread (see host.py). Its thread's CPU
    # priority is lowered already after 10 ms blocked (host.ts).
    cpu_limit_ms: int = Field(default=500, ge=10, le=300_000)
    heap_mb: int = Field(default=128, ge=16)
    max_result_bytes: int = Field(default=64 * 1024, ge=16)
    max_log_bytes: int = Field(default=64 * 1024, ge=64)
    max_log_entries: int = Field(default=200, ge=1)
    max_fetches_per_run: int = Field(default=50, ge=0)
    max_calls_per_run: int = Field(default=1000, ge=0)
    # Binding calls and fetches of one run answered at once; the rest wait their turn. They
    # share the runner's Postgres pool (10) and HTTP connector (64) with every other run:
    # without this, one workflow's 1,000 calls at once queued every other run's queries.
    max_concurrent_calls_per_run: int = Field(default=4, ge=1)
    max_fetch_body_bytes: int = Field(default=1024 * 1024, ge=0)
    # One line on a host's socket, either way (a run's code and event, a fetch's body, ...).
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    max_runs_per_host: int = Field(default=16, ge=1)
    max_workers_per_host: int = Field(default=64, ge=1)
    # An idle Worker is terminated after this long (and at once when it stops answering pings).
    worker_idle_ttl_s: float = Field(default=300.0, gt=0)
    # None: a private temporary directory (mode 0700), removed on close.
    socket_dir: str | None = None
    # cgroup v2, per host process; skipped (logged once) where the kernel does not allow it,
    # and then memory_max_mb is enforced by polling (memory_watch.py). A warm Worker holds
    # about 7 MB: 64 of them plus one full 128 MB heap need about 650 MB.
    memory_max_mb: int = Field(default=768, ge=32)
    # pids.max counts threads: one per Worker (max_workers_per_host) and the runtime's own
    # (four on 2 cores; V8's pool grows with the cores): at 64 a host could not start its
    # last Workers.
    pids_max: int = Field(default=128, ge=8)
    # A cgroup v2 directory delegated to the runner; None: the runner's own cgroup.
    cgroup_parent: str | None = None
    # None: the binary of the PyPI `deno` package.
    deno_bin: str | None = None
    host_start_timeout_s: float = Field(default=10.0, gt=0)


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    workflow_id: str
    version: int
    code: str
    language: Language
    event: dict  # the first argument of the default export (event.event, event.data, ...)
    # Runs of one organization share hosts with no other organization's (placement.py).
    organization_id: str


@dataclass(frozen=True)
class RunOutcome:
    status: Status
    started_at: datetime
    duration_ms: int
    result: Any | None  # the JSON return value; None for undefined
    error: dict | None  # {"message": str, "stack": str | None}
    # [{"level": "log"|"info"|"warn"|"error"|"debug", "message": str}], capped; when anything
    # was dropped, a last "warn" entry says how much.
    logs: list[dict]
    cold: bool = False  # the run started a new Worker (its version's first run on that host)
    crashed: bool = False  # its host died under it (whichever run was the cause)
    # A wall-time timeout whose host was starved of CPU over the run (starvation.py).
    starved: bool = False


@dataclass(frozen=True)
class FetchRequest:
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class FetchResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class FetchRefused(Exception):
    """Raised by Bindings.fetch to refuse a request; the code sees a TypeError with the reason."""


class BindingError(Exception):
    """Raised by Bindings.call for a bad call; the code sees an Error with this message.

    Any other exception is logged and shown to the code as an internal error, without details.
    """


class Bindings(Protocol):
    """Answers the workflow's binding calls and fetches for ONE run.

    The caller scopes it to the run's organization and room; the sandbox never passes anything
    that would widen that scope. Arguments come from customer code: validate them. Return JSON
    values only. Calls of one run may arrive concurrently.
    """

    async def call(self, method: str, args: list[Any]) -> Any:
        """`method` is one of BINDING_METHODS. Raise BindingError to reject with a message."""

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        """Perform the request or raise FetchRefused(reason). Bound its time and size."""
