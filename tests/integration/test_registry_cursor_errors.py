"""Every route that takes a `cursor` refuses one this API did not return as the other 400s refuse
a field: `error.details` names `cursor` and says what is wrong. The routes come from the route
table, so a new paged route is checked (or fails) at once."""

from __future__ import annotations

import base64
import uuid

import pytest

from services.registry.openapi import ROUTES
from tests.support.tenants import WORKFLOW_CODE

pytestmark = pytest.mark.integration

PAGED = [route for route in ROUTES if route.paged]


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_CURSORS = [
    "not-a-cursor",
    cursor_of("yesterday|x"),  # decodes, names no instant
    cursor_of(f"2026-05-29T10:00:00|{uuid.UUID(int=1)}"),  # an instant without a zone
    cursor_of("2026-05-29T10:00:00+00:00|not-a-uuid"),
    cursor_of(f"0001-01-01T00:00:00+14:00|{uuid.UUID(int=1)}"),  # before year 1 in UTC
]


def test_the_route_table_has_paged_routes_in_every_family_that_lists() -> None:
    families = {route.path.split("/")[-1] for route in PAGED}
    assert {"webhooks", "deliveries", "workflows", "executions", "events", "api-keys"} <= families
    assert "audit-log" in families


async def path_values(registry) -> dict[str, str]:
    """A real webhook and workflow of alice's, for the routes under them."""
    alice = registry.alice
    base = f"{registry.url}/v1/accounts/{alice.id}"
    bodies = {
        "webhook": {"url": "https://hooks.example.com/h", "events": ["participant.joined"]},
        "workflow": {"name": "w", "events": ["participant.joined"], "code": WORKFLOW_CODE},
    }
    values = {"account_id": alice.id}
    for kind, body in bodies.items():
        resp = await registry.http.post(f"{base}/{kind}s", json=body, headers=alice.auth())
        assert resp.status == 201, await resp.text()
        values[f"{kind}_id"] = (await resp.json())["data"][kind]["id"]
    return values


async def test_a_bad_cursor_is_a_400_naming_cursor_on_every_paged_route(registry) -> None:
    alice = registry.alice
    values = await path_values(registry)
    for route in PAGED:
        url = registry.url + route.path.format(**values)
        for bad in BAD_CURSORS:
            resp = await registry.http.get(url, params={"cursor": bad}, headers=alice.auth())
            answer = await resp.json()
            assert resp.status == 400, (route.path, bad, answer)
            assert answer["error"]["code"] == "validation_error"
            assert answer["error"]["details"] == [
                {"field": "cursor", "message": "is not a cursor this API returned"}
            ], (route.path, bad)
            assert answer["description"] == "cursor: is not a cursor this API returned"
