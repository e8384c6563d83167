"""Pure decisions about customer portal sessions: what a session reaches, its link's URL,
where the registry says it is reached, and what a portal body accepts."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from services.registry.policy import Access, decide_portal_access
from services.registry.portal.models import PortalSessionInput
from services.registry.portal.service import portal_url
from services.registry.settings import RegistrySettings

ACCOUNT = uuid.UUID("8b0f7d2e-3c1a-4e5f-9a6b-7c8d9e0f1a2b")
MINE = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER = uuid.UUID("22222222-2222-4222-8222-222222222222")
BASE = {
    "session_account": ACCOUNT,
    "webhook_ids": frozenset({MINE}),
    "read_only": False,
    "portal_route": True,
    "path_account": str(ACCOUNT),
    "path_webhook": str(MINE),
    "write": True,
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, Access.ALLOWED),
        ({"path_account": str(ACCOUNT).upper()}, Access.ALLOWED),
        ({"path_webhook": str(MINE).upper()}, Access.ALLOWED),
        ({"portal_route": False}, Access.NOT_A_PORTAL_ROUTE),
        ({"portal_route": False, "path_account": None}, Access.NOT_A_PORTAL_ROUTE),
        ({"path_account": str(uuid.uuid4())}, Access.OTHER_ACCOUNT),
        ({"path_webhook": str(OTHER)}, Access.OTHER_WEBHOOK),
        ({"path_webhook": "not-a-uuid"}, Access.OTHER_WEBHOOK),
        ({"path_webhook": str(OTHER), "webhook_ids": None}, Access.ALLOWED),
        ({"path_webhook": None}, Access.ALLOWED),  # a collection: the list is filtered
        ({"read_only": True}, Access.READ_ONLY_SESSION),
        ({"read_only": True, "write": False}, Access.ALLOWED),
        ({"read_only": True, "path_webhook": str(OTHER)}, Access.OTHER_WEBHOOK),
        ({"path_account": None}, Access.ALLOWED),  # /v1/me
    ],
)
def test_a_portal_session_reaches_its_own_webhooks_on_portal_routes_only(change, expected):
    assert decide_portal_access(**(BASE | change)) is expected


def test_the_link_carries_its_token_in_the_fragment_of_the_console_portal():
    assert (
        portal_url("https://hooks.example.com/", "rhl_abc")
        == "https://hooks.example.com/console/portal#token=rhl_abc"
    )


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),  # noqa: S104
        ({"host": "::"}, "http://[::1]:8080"),
        ({"host": "registry.internal"}, "http://registry.internal:8080"),
        ({"public_url": "https://hooks.example.com/"}, "https://hooks.example.com"),
        ({"public_url": "https://example.com/roomhooks"}, "https://example.com/roomhooks"),
    ],
)
def test_the_public_url_is_the_setting_else_where_the_registry_listens(settings, url):
    assert RegistrySettings(**settings).public_base_url == url


@pytest.mark.parametrize("value", ["ftp://x.example.com", "hooks.example.com", "https://a b"])
def test_a_public_url_that_is_no_http_url_is_refused(value):
    with pytest.raises(ValidationError):
        RegistrySettings(public_url=value)


def test_a_portal_body_has_defaults_and_parses_ids():
    assert PortalSessionInput.model_validate({}).model_dump() == {
        "webhook_ids": None,
        "read_only": False,
        "ttl_seconds": 3600,
    }
    body = PortalSessionInput.model_validate({"webhookIds": [str(MINE).upper()], "ttlSeconds": 60})
    assert (body.webhook_ids, body.ttl_seconds) == ([MINE], 60)
