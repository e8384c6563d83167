"""Shared by the sandbox tests (no tests here): the CollabKit webhooks guide's workflows as written,
and Bindings that answer from memory and fetch through the delivery service's SSRF guard without a
network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from services.workflow_runner.sandbox import (
    BindingError,
    FetchRefused,
    FetchRequest,
    FetchResponse,
    RunRequest,
)
from shared.guarded_resolver import GuardedResolver
from shared.ssrf import AddressPolicy, BlockedAddress, guard_message, host_address
from tests.support.network import TableResolver

LOG_NEW_PARTICIPANTS = """\
export default async function(event, { room }) {
  const roomData = await room.get();
  console.log(`[${event.event}] User ${event.data.userId} in room ${roomData.name}`);
  return { logged: true };
}"""

NOTIFY_SLACK = """\
export default async function(event, { room }) {
  if (event.event !== 'session.started') return;

  const roomData = await room.get();

  await fetch('https://hooks.slack.com/services/YOUR/WEBHOOK/URL', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      text: `Collaboration session started in "${roomData.name}"`,
    }),
  });

  return { notified: true };
}"""

WELCOME_STORE_ENTRY = """\
export default async function(event, { store }) {
  if (event.event !== 'user.created') return;

  // Note: workflow store access is read-only
  // Use this to check existing state, then use fetch()
  // to call external APIs with the data
  const existing = await store.get('settings', event.data.userId);
  console.log('User settings:', existing);

  return { checked: true };
}"""

# The account of a test's runs, unless it names another (each account has hosts of its own).
ORGANIZATION = "org-a"

ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design Review"}

# The names a fetch may use, as a resolver would answer them: public, private, metadata.
ADDRESSES = {
    "hooks.slack.com": "34.120.10.10",
    "localhost": "127.0.0.1",
    "metadata.internal": "169.254.169.254",
}


def event(name: str, user_id: str = "user-001") -> dict[str, Any]:
    return {
        "id": "evt-1",
        "event": name,
        "timestamp": "2026-05-29T10:06:00.000Z",
        "data": {"userId": user_id, "roomId": ROOM["id"]},
    }


def request(
    code: str,
    *,
    workflow: str,
    run: str,
    version: int = 1,
    language: str = "js",
    payload: dict[str, Any] | None = None,
    organization: str = ORGANIZATION,
) -> RunRequest:
    return RunRequest(
        run_id=run,
        workflow_id=workflow,
        version=version,
        code=code,
        language=language,  # type: ignore[arg-type]
        event=payload if payload is not None else event("participant.joined"),
        organization_id=organization,
    )


@dataclass
class MemoryBindings:
    """One run's bindings from memory; fetch answers 200 after the SSRF guard allows it."""

    store: dict[tuple[str, str], Any] = field(
        default_factory=lambda: {("settings", "user-001"): {"theme": "dark"}}
    )
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)
    fetches: list[FetchRequest] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    policy: AddressPolicy = field(default_factory=AddressPolicy)

    async def call(self, method: str, args: list[Any]) -> Any:
        self.calls.append((method, args))
        match method:
            case "room.get":
                return ROOM
            case "room.getUsers":
                return [{"id": "user-001", "name": "Ada"}]
            case "store.get":
                if len(args) != 2 or not all(isinstance(a, str) for a in args):
                    raise BindingError("store.get(store, key) takes two strings")
                return self.store.get((args[0], args[1]))
            case "store.getAll":
                return {k: v for (s, k), v in self.store.items() if s == args[0]}
            case "files.list":
                return []
        raise BindingError(f"unknown binding {method}")

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        host = URL(request.url).host or ""
        try:
            refusal = self.policy.host_refusal(host)
            if refusal is not None:
                raise BlockedAddress(guard_message(refusal))
            if host_address(host) is None:  # a name: the guard judges what it resolves to
                await GuardedResolver(self.policy, TableResolver(ADDRESSES)).resolve(host)
        except BlockedAddress as exc:
            self.refused.append(request.url)
            raise FetchRefused(str(exc)) from exc
        self.fetches.append(request)
        return FetchResponse(200, {"content-type": "text/plain"}, b"ok")
