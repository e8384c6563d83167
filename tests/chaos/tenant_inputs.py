"""The bad input of the hostile-tenants scenario, and where each piece must end up.

Messages go straight to a topic, each under a key of its own (`hostile-<kind>-<n>`), so its
dead letter can be found again: a malformed one must be in that topic's DLQ exactly once, its
`rh-error` naming one of `reasons` (any reason when there are none). A few carry bad text in
a field that is neither an id nor the organization: the platform may escape and deliver them
or dead-letter them (`may_deliver`), one or the other, once.

API probes are requests the registry must refuse with a 4xx in the error envelope, its error
naming the field at fault. Workflows are the attacker's: each returns or logs what Postgres
text cannot hold as it is (NUL, a lone surrogate) or 1 MB; each run must end in a final status,
recorded once (`ends`: the status it must end with; None: any final one, with its reason).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIMESTAMP = "2026-12-01T00:00:00.000Z"
DEPTH = 10_000  # the deep event's nesting
API_DEPTH = 5_000  # the deep request body's nesting


@dataclass(frozen=True)
class Tenant:
    """What the bad input is about: the attacker's account and room, and a workflow of it."""

    organization_id: str
    room_id: str
    workflow_id: str


@dataclass(frozen=True)
class BadMessage:
    kind: str
    topic: str  # a `Topics` attribute: "events", "workflow_runs" or "deliveries"
    value: Callable[[Tenant, int], bytes]
    reasons: tuple[str, ...] = ()  # the reason names one of these (case-insensitive)
    may_deliver: bool = False  # escaped and delivered instead: allowed

    def key(self, n: int) -> str:
        return f"hostile-{self.kind}-{n}"


def _event(tenant: Tenant, n: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"hostile-{kind}-{n}",
        "event": "participant.joined",
        "timestamp": TIMESTAMP,
        "organization_id": tenant.organization_id,
        "room": {"id": tenant.room_id, "name": "Attacker's room"},
        "user": {"id": "user-1", "name": "Mallory"},
    } | fields


def _dumps(doc: dict[str, Any]) -> bytes:
    # ensure_ascii (the default) writes NUL as \u0000 and a lone surrogate as \ud800: the
    # message is well-formed JSON, the text it stands for is not storable as it is.
    return json.dumps(doc).encode()


def _deep(tenant: Tenant, n: int) -> bytes:
    head = _dumps(_event(tenant, n, "deep-event"))[:-1]
    return head + b', "extra": ' + b"[" * DEPTH + b"]" * DEPTH + b"}"


def _session_closed(tenant: Tenant, n: int) -> bytes:
    doc = _event(tenant, n, "users-not-a-list", event="session.closed", users=5)
    del doc["user"]
    return _dumps(doc)


def _run_request(tenant: Tenant, n: int, kind: str, **fields: Any) -> bytes:
    doc = {
        "run_id": str(uuid.uuid5(uuid.UUID(tenant.workflow_id), f"hostile-{kind}-{n}")),
        "workflow_id": tenant.workflow_id,
        "version": 1,
        "organization_id": tenant.organization_id,
        "room_id": tenant.room_id,
        "event_id": f"hostile-{kind}-{n}",
        "event": {"id": f"hostile-{kind}-{n}", "event": "participant.joined"},
        "created_at": TIMESTAMP,
    } | fields
    return _dumps(doc)


def _delivery_request(tenant: Tenant, n: int, kind: str, **fields: Any) -> bytes:
    webhook_id = str(uuid.uuid4())  # no such webhook: only its shape matters here
    doc = {
        "type": "deliver",
        "delivery_id": str(uuid.uuid5(uuid.UUID(webhook_id), f"hostile-{kind}-{n}")),
        "webhook_id": webhook_id,
        "organization_id": tenant.organization_id,
        "event_id": f"hostile-{kind}-{n}",
        "event": "participant.joined",
        "body": "{}",
        "created_at": TIMESTAMP,
    } | fields
    return _dumps(doc)


def _id(tenant: Tenant, n: int, kind: str, bad: str) -> str:
    return f"hostile-{kind}-{n}-{bad}"


MESSAGES: tuple[BadMessage, ...] = (
    # --- roomhooks.events: an id or organization that cannot be stored goes to the DLQ ---
    BadMessage(
        "nul-id",
        "events",
        lambda t, n: _dumps(_event(t, n, "nul-id", id=_id(t, n, "nul-id", "\x00"))),
        ("id",),
    ),
    BadMessage(
        "surrogate-id",
        "events",
        lambda t, n: _dumps(_event(t, n, "surrogate-id", id=_id(t, n, "surrogate-id", "\ud800"))),
        ("id",),
    ),
    BadMessage(
        "nul-organization",
        "events",
        lambda t, n: _dumps(
            _event(t, n, "nul-organization", organization_id=t.organization_id + "\x00")
        ),
        ("organization_id",),
    ),
    BadMessage(
        "surrogate-organization",
        "events",
        lambda t, n: _dumps(
            _event(t, n, "surrogate-organization", organization_id=t.organization_id + "\udfff")
        ),
        ("organization_id",),
    ),
    BadMessage("deep-event", "events", _deep, ("deep", "nest", "depth", "recursion")),
    BadMessage("users-not-a-list", "events", _session_closed, ("users",)),
    # Bad text where it is neither an id nor the organization: escaped or dead-lettered.
    BadMessage(
        "nul-user-name",
        "events",
        lambda t, n: _dumps(_event(t, n, "nul-user-name", user={"id": "u", "name": "Ma\x00ry"})),
        ("user", "name"),
        may_deliver=True,
    ),
    BadMessage(
        "surrogate-user-name",
        "events",
        lambda t, n: _dumps(
            _event(t, n, "surrogate-user-name", user={"id": "u", "name": "Ma\ud83dry"})
        ),
        ("user", "name"),
        may_deliver=True,
    ),
    # --- roomhooks.workflow-runs: run requests with bad ids ---
    BadMessage(
        "run-id-not-uuid",
        "workflow_runs",
        lambda t, n: _run_request(t, n, "run-id-not-uuid", run_id=f"not-a-uuid-{n}"),
        ("run_id", "uuid"),
    ),
    BadMessage(
        "run-workflow-id-nul",
        "workflow_runs",
        lambda t, n: _run_request(t, n, "run-workflow-id-nul", workflow_id="wf\x00" + str(n)),
        ("workflow_id", "uuid"),
    ),
    BadMessage(
        "run-organization-surrogate",
        "workflow_runs",
        lambda t, n: _run_request(
            t, n, "run-organization-surrogate", organization_id=t.organization_id + "\ud800"
        ),
        # pydantic's JSON parser refuses a lone surrogate's escape: "unexpected end of hex escape"
        ("organization_id", "surrogate", "uuid", "escape"),
    ),
    BadMessage(
        "run-event-not-object",
        "workflow_runs",
        lambda t, n: _run_request(t, n, "run-event-not-object", event=5),
        ("event",),
    ),
    BadMessage("run-not-json", "workflow_runs", lambda t, n: b'{"run_id": "%d' % n),
    # --- roomhooks.deliveries: malformed delivery requests ---
    BadMessage(
        "delivery-id-not-uuid",
        "deliveries",
        lambda t, n: _delivery_request(t, n, "delivery-id-not-uuid", delivery_id=f"nope-{n}"),
        ("delivery_id", "uuid"),
    ),
    BadMessage(
        "delivery-organization-nul",
        "deliveries",
        lambda t, n: _delivery_request(
            t, n, "delivery-organization-nul", organization_id="org\x00" + str(n)
        ),
        ("organization_id", "uuid"),
    ),
    BadMessage(
        "delivery-unknown-type",
        "deliveries",
        lambda t, n: _delivery_request(t, n, "delivery-unknown-type", type="explode"),
        ("type", "deliver"),
    ),
    BadMessage("delivery-not-json", "deliveries", lambda t, n: b'{"type": "deliver", %d' % n),
)


# --- the API -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiProbe:
    """A request the registry must refuse with a 4xx whose error names `field` (if any)."""

    name: str
    collection: str  # "webhooks" or "workflows"
    body: Callable[[str], bytes]  # of a URL the registry accepts
    field: str | None


def _webhook_body(url: str, **fields: Any) -> bytes:
    return _dumps({"url": url, "events": ["participant.joined"], "roomId": "probe"} | fields)


def _workflow_body(**fields: Any) -> bytes:
    doc = {"name": "probe", "events": ["participant.joined"], "code": BENIGN_CODE}
    return _dumps(doc | fields)


API_PROBES: tuple[ApiProbe, ...] = (
    ApiProbe(
        "webhook name with NUL", "webhooks", lambda u: _webhook_body(u, name="a\x00b"), "name"
    ),
    ApiProbe(
        "webhook url with a lone surrogate",
        "webhooks",
        lambda u: _webhook_body(u + "/\ud800"),
        "url",
    ),
    ApiProbe(
        "workflow code with NUL",
        "workflows",
        lambda _u: _workflow_body(code=BENIGN_CODE + "// \x00"),
        "code",
    ),
    ApiProbe(
        "workflow name with a lone surrogate",
        "workflows",
        lambda _u: _workflow_body(name="x\udc00"),
        "name",
    ),
    ApiProbe(
        f"webhook body nested {API_DEPTH:,} deep",
        "webhooks",
        lambda u: _webhook_body(u)[:-1] + b', "x": ' + b"[" * API_DEPTH + b"]" * API_DEPTH + b"}",
        None,
    ),
)


# --- workflows -----------------------------------------------------------------------------

BENIGN_CODE = (
    "export default async (event) => {\n"
    "  console.log(`joined: ${event.id}`);\n"
    "  return { seen: event.id };\n"
    "};\n"
)


@dataclass(frozen=True)
class HostileWorkflow:
    name: str
    code: str
    ends: str | None  # the final status it must have; None: any, with its reason


def _js(body: str) -> str:
    return f"export default async (event) => {{\n{body}\n}};\n"


HOSTILE_WORKFLOWS: tuple[HostileWorkflow, ...] = (
    HostileWorkflow("returns NUL", _js('return "x\\u0000y";'), "success"),
    HostileWorkflow(
        "logs NUL", _js('console.log("a\\u0000b");\nreturn { logged: true };'), "success"
    ),
    HostileWorkflow("returns a lone surrogate", _js('return { text: "x\\ud800y" };'), "success"),
    HostileWorkflow("returns 1 MB", _js('return "x".repeat(1 << 20);'), None),
    HostileWorkflow(
        "logs 1 MB", _js('console.log("y".repeat(1 << 20));\nreturn { logged: true };'), "success"
    ),
)
