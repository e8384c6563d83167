"""Realistic samples of every catalog event: as the room services would send it (`sample_event`,
what `roomhooks trigger` publishes) and as a webhook receives it (`example_payload`, what
`GET /v1/event-types` shows). Pure: stdlib and pydantic only.

An event the table below does not describe (a new catalog entry) still gets its scope's room,
users or organization, so every catalog event has a sample.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events.catalog import CATALOG, ParticipantEvent, Scope, SessionClosedEvent, UserEvent
from shared.events.ingress import parse_event
from shared.events.rendering import build_event, format_timestamp, render_payload

ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review"}
ADA = {"id": "user-001", "name": "Ada Lovelace", "email": "ada@example.com", "color": "#3b82f6"}
GRACE = {"id": "user-002", "name": "Grace Hopper", "email": "grace@example.com", "color": "#f59e0b"}
MEETING_ID = "bbb2c6d4-5a8e-4f0e-9a57-7c1d2e3f4a5b"


@dataclass(frozen=True)
class Moment:
    """What a sample's extra fields are made of: the organization and two times as text."""

    organization_id: str
    started: str  # when the meeting (or the change) began
    now: str


Extras = Callable[[Moment], dict[str, Any]]


def _meeting(status: str, started: str, **more: Any) -> dict[str, Any]:
    return {
        "id": MEETING_ID,
        "title": "Design review sync",
        "status": status,
        "startedAt": started,
        **more,
    }


def _participant(now: str) -> dict[str, Any]:
    return {"id": "prt-7f3a", "userId": ADA["id"], "name": ADA["name"], "joinedAt": now}


def _member(role: str) -> dict[str, Any]:
    return {"id": GRACE["id"], "name": GRACE["name"], "email": GRACE["email"], "role": role}


def _invite(status: str) -> dict[str, Any]:
    return {"id": "inv-51c2", "email": "linus@example.com", "role": "MEMBER", "status": status}


def _webhook(org: str, now: str, **more: Any) -> dict[str, Any]:
    return {
        "id": "5f0c8a9e-2b7d-4c1e-8f3a-6d9b0e1c2a34",
        "organization_id": org,
        "name": "Participants",
        "url": "https://hooks.example.com/collab-webhook",
        "events": ["participant.joined", "participant.left"],
        "room_id": None,
        "enabled": True,
        "created_at": now,
        "updated_at": now,
        **more,
    }


EXTRAS: dict[str, Extras] = {
    "meeting.started": lambda m: {"meeting": _meeting("LIVE", m.started)},
    "meeting.ended": lambda m: {"meeting": _meeting("ENDED", m.started, endedAt=m.now)},
    "meeting.participantJoined": lambda m: {
        "meeting": _meeting("LIVE", m.started),
        "participant": _participant(m.now),
    },
    "meeting.participantLeft": lambda m: {
        "meeting": _meeting("LIVE", m.started),
        "participant": {**_participant(m.started), "leftAt": m.now},
    },
    "meeting.chatSynced": lambda m: {
        "meeting": _meeting("LIVE", m.started),
        "messages": [
            {"id": "msg-1", "userId": ADA["id"], "message": "Shall we start?", "sentAt": m.now}
        ],
    },
    "recording.statusUpdate": lambda m: {
        "meeting": _meeting("LIVE", m.started),
        "recording": {"id": "rec-9d1e", "status": "RECORDING", "startedAt": m.now},
    },
    "livestreaming.statusUpdate": lambda m: {
        "meeting": _meeting("LIVE", m.started),
        "livestream": {"id": "lvs-2b4c", "status": "LIVE", "startedAt": m.now},
    },
    "meeting.transcript": lambda m: {
        "meeting": _meeting("ENDED", m.started, endedAt=m.now),
        "transcript": {"language": "en-US", "downloadUrl": "https://files.example.com/t.vtt"},
    },
    "meeting.summary": lambda m: {
        "meeting": _meeting("ENDED", m.started, endedAt=m.now),
        "summary": {"text": "Agreed on the new onboarding flow.", "language": "en-US"},
    },
    "organization.updated": lambda _m: {
        "changes": {"name": {"from": "Acme", "to": "Acme Design"}},
    },
    "member.added": lambda _m: {"member": _member("MEMBER")},
    "member.removed": lambda _m: {"member": _member("MEMBER")},
    "member.role_updated": lambda _m: {
        "member": _member("ADMIN"),
        "previousRole": "MEMBER",
    },
    "invite.created": lambda _m: {"invite": _invite("PENDING")},
    "invite.accepted": lambda _m: {"invite": _invite("ACCEPTED")},
    "invite.cancelled": lambda _m: {"invite": _invite("CANCELLED")},
    "oauth_app.created": lambda _m: {
        "oauth_app": {"id": "app-3e7f", "name": "Acme Calendar", "clientId": "ck_client_4f2a"},
    },
    "oauth_app.revoked": lambda _m: {
        "oauth_app": {"id": "app-3e7f", "name": "Acme Calendar", "clientId": "ck_client_4f2a"},
    },
    "webhook.created": lambda m: {"webhook": _webhook(m.organization_id, m.now)},
    "webhook.disabled": lambda m: {
        "webhook": _webhook(
            m.organization_id, m.now, enabled=False, disabled_reason="the endpoint answered 410"
        ),
        "reason": "the endpoint answered 410",
    },
}


def _scope_fields(name: str, organization_id: str) -> dict[str, Any]:
    """The room, user(s) or organization the event's model asks for."""
    spec = CATALOG[name]
    if spec.scope is Scope.ORGANIZATION:
        return {"organization": {"id": organization_id, "name": "Acme Design"}, "user": ADA}
    model = spec.payload_model
    fields: dict[str, Any] = {"room": {"id": ROOM["id"]} if model is UserEvent else ROOM}
    if model in (ParticipantEvent, UserEvent):
        fields["user"] = ADA
    if model is SessionClosedEvent:
        fields["users"] = [ADA, GRACE]
    return fields


def sample_event(
    name: str, *, organization_id: str, now: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """A valid `name` event of the organization (KeyError: not in the catalog); a new copy."""
    moment = Moment(
        organization_id,
        started=format_timestamp(now - timedelta(minutes=25)),
        now=format_timestamp(now),
    )
    fields = copy.deepcopy(_scope_fields(name, organization_id))
    extras = EXTRAS.get(name, lambda _m: {})(moment)
    return build_event(
        event=name,
        organization_id=organization_id,
        room=fields.pop("room", None),
        user=fields.pop("user", None),
        users=fields.pop("users", None),
        event_id=event_id,
        now=now,
        extra={**fields, **copy.deepcopy(extras)},
    )


# The example's organization, event id and moment: fixed, so the catalog's answer never changes.
EXAMPLE_ORGANIZATION_ID = "9b7e7a4e-8a38-4c6e-9a0e-1f7f5e3f2a11"
EXAMPLE_EVENT_ID = "0f8c3b1e-6d2a-4e57-9c41-8a5b7d3e2f10"
EXAMPLE_AT = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)


def example_payload(name: str) -> dict[str, Any]:
    """The body a webhook receives for the sample of `name` (KeyError: not in the catalog),
    rendered by `render_payload` as delivery sends it, then parsed: a new copy."""
    sample = sample_event(
        name, organization_id=EXAMPLE_ORGANIZATION_ID, now=EXAMPLE_AT, event_id=EXAMPLE_EVENT_ID
    )
    return json.loads(render_payload(parse_event(sample)))
