"""The bindings one run sees: read-only room data of its event's organization and room, and
`fetch` through the same SSRF guard as deliveries.

Every read is bounded to (organization, room) of the run request, never anything the code
passes in: a workflow cannot name another room or account.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

import aiohttp
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from yarl import URL

from services.workflow_runner.dependencies import Fetches, ProjectionStore
from services.workflow_runner.sandbox.models import (
    BindingError,
    FetchRefused,
    FetchRequest,
    FetchResponse,
)
from shared.ssrf import AddressPolicy, BlockedAddress, guard_message
from shared.tracing import NO_TRACING, Tracing, url_without_query

MAX_NAME = 512
# The bindings a span is named after; any other name is a span named "binding unknown".
_BINDINGS = frozenset({"room.get", "room.getUsers", "store.get", "store.getAll", "files.list"})
# A fetch's URL and error as its execution records them (the sandbox caps fetches per run).
MAX_RECORDED_URL = 2048
MAX_RECORDED_ERROR = 500


def _name(args: list[Any], index: int, what: str) -> str:
    if len(args) <= index or not isinstance(args[index], str) or not args[index]:
        raise BindingError(f"{what} must be a non-empty string")
    if len(args[index]) > MAX_NAME:
        raise BindingError(f"{what} is longer than {MAX_NAME} characters")
    return args[index]


def workflow_user_agent() -> str:
    """`roomhooks-workflow/<version>`, as deliveries say `roomhooks/<version>`."""
    return f"roomhooks-workflow/{version('roomhooks')}"


class Fetcher:
    """HTTP for workflows: public addresses only, bounded in time and size, no redirects.

    A 3xx is handed back as it is: code that follows it calls `fetch` again, and that hop
    passes the guard like the first. Requests say they come from a workflow in their
    User-Agent, unless the code sets its own.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        policy: AddressPolicy,
        timeout_s: float,
        max_bytes: int,
        user_agent: str | None = None,
    ) -> None:
        self._session = session
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_bytes = max_bytes
        self._user_agent = user_agent or workflow_user_agent()

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        try:
            target = URL(request.url)
        except Exception as exc:  # ValueError, and IndexError on some malformed hosts
            raise FetchRefused(f"not a valid URL: {request.url[:200]!r}") from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise FetchRefused(f"only absolute http(s) URLs can be fetched: {request.url!r}")
        refusal = self._policy.host_refusal(target.host)
        if refusal is not None:
            raise FetchRefused(guard_message(refusal))
        try:
            async with self._session.request(
                request.method,
                target,
                headers=with_user_agent(request.headers, self._user_agent),
                data=request.body,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                body = await response.content.read(self._max_bytes + 1)
                if len(body) > self._max_bytes:
                    raise FetchRefused(f"response larger than {self._max_bytes} bytes")
                return FetchResponse(response.status, dict(response.headers), body)
        except BlockedAddress as exc:
            raise FetchRefused(str(exc)) from exc
        except TimeoutError as exc:
            raise FetchRefused(f"timed out after {self._timeout.total} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchRefused(f"{type(exc).__name__}: {exc}"[:500]) from exc


def with_user_agent(headers: dict[str, str], user_agent: str) -> dict[str, str]:
    """The code's headers, with ours as User-Agent when the code set none (aiohttp's own,
    `Python/3.11 aiohttp/...`, would say nothing about who sends it)."""
    if any(name.lower() == "user-agent" for name in headers):
        return headers
    return {**headers, "User-Agent": user_agent}


class RoomBindings:
    """Answers one run's binding calls from the projection, for its organization and room."""

    def __init__(
        self,
        projection: ProjectionStore,
        fetcher: Fetches,
        *,
        organization_id: str,
        room_id: str | None,
        tracing: Tracing = NO_TRACING,
        span: Span | None = None,
    ) -> None:
        """With `tracing` on, each binding call and fetch is a child span of the run's `span`."""
        self._tracing = tracing
        self._parent = trace.set_span_in_context(span) if span is not None else None
        self._projection = projection
        self._fetcher = fetcher
        self._org = organization_id
        self._room = room_id
        self.fetch_log: list[dict[str, Any]] = []
        # Every fetch that reached the fetcher, in order: {method, url, status, duration_ms,
        # error}; status None when nothing answered (refused, timed out, broken off).
        self.fetches: list[dict[str, Any]] = []

    async def call(self, method: str, args: list[Any]) -> Any:
        if not self._tracing.enabled:
            return await self._call(method, args)
        span = self._tracing.start(
            "binding " + (method if method in _BINDINGS else "unknown"),
            parent=self._parent,
            attributes={"roomhooks.binding": method[:MAX_NAME]},
        )
        try:
            return await self._call(method, args)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, str(exc)[:MAX_RECORDED_ERROR])
            raise
        finally:
            span.end()

    async def _call(self, method: str, args: list[Any]) -> Any:
        if self._room is None:  # an organization event: there is no room to read
            return {"room.get": None, "files.list": [], "room.getUsers": [],
                    "store.getAll": {}}.get(method)  # fmt: skip
        projection, org, room = self._projection, self._org, self._room
        match method:
            case "room.get":
                return await projection.room(org, room)
            case "room.getUsers":
                return await projection.room_users(org, room)
            case "store.get":
                store, key = _name(args, 0, "store"), _name(args, 1, "key")
                return await projection.kv_get(org, room, store, key)
            case "store.getAll":
                return await projection.kv_all(org, room, _name(args, 0, "store"))
            case "files.list":
                return await projection.files(org, room)
        raise BindingError(f"unknown binding {method!r}")

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        """Fetch through the guard; the status lands in the run's log (the sandbox logs
        refusals and failures itself), and every fetch in `fetches` (and, tracing on, in an
        HTTP client span of the run)."""
        if not self._tracing.enabled:
            return await self._fetch(request)
        span = self._tracing.start(
            request.method[:16],
            parent=self._parent,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method[:16],
                "url.full": url_without_query(request.url[:MAX_RECORDED_URL]),
            },
        )
        try:
            response = await self._fetch(request)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, str(exc)[:MAX_RECORDED_ERROR])
            raise
        else:
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 400:
                span.set_status(StatusCode.ERROR, f"HTTP {response.status}")
        finally:
            span.end()
        return response

    async def _fetch(self, request: FetchRequest) -> FetchResponse:
        started = time.perf_counter()
        try:
            response = await self._fetcher.fetch(request)
        except Exception as exc:
            self._recorded(request, started, status=None, error=str(exc) or type(exc).__name__)
            raise
        elapsed = self._recorded(request, started, status=response.status, error=None)
        self.fetch_log.append(
            {
                "level": "info",
                "message": f"fetch {request.method} {request.url} -> {response.status}"
                f" ({elapsed} ms)",
            }
        )
        return response

    def _recorded(
        self, request: FetchRequest, started: float, *, status: int | None, error: str | None
    ) -> int:
        """Note one fetch in `fetches`; its duration in ms."""
        elapsed = int((time.perf_counter() - started) * 1000)
        self.fetches.append(
            {
                "method": request.method,
                "url": request.url[:MAX_RECORDED_URL],
                "status": status,
                "duration_ms": elapsed,
                "error": error[:MAX_RECORDED_ERROR] if error is not None else None,
            }
        )
        return elapsed
