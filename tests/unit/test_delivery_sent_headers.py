"""What an attempt records of the headers it was sent with: signatures keep only their scheme,
the webhook's own header values are masked, everything else is kept as sent."""

from __future__ import annotations

import pytest

from services.delivery.dispatcher import build_headers
from services.delivery.sent_headers import recorded_headers
from shared.signing import PreviousSecret

SECRET = "a" * 64
OLD_SECRET = "b" * 64


def sent(**kw) -> dict[str, str]:
    return build_headers(
        secret=SECRET,
        body=b'{"id":"e1"}',
        delivery_id="d-1",
        event="participant.joined",
        attempt=2,
        timestamp=1_800_000_000,
        user_agent="roomhooks/1.0",
        **kw,
    )


def test_signatures_keep_only_their_scheme_and_the_rest_is_kept_as_sent():
    headers = sent()
    recorded = recorded_headers(headers)
    assert recorded["webhook-signature"] == "v1,****"
    assert recorded["X-Webhook-Signature"] == "****"
    unmasked = {k: v for k, v in headers.items() if "ignature" not in k}
    assert {k: v for k, v in recorded.items() if "ignature" not in k} == unmasked
    assert list(recorded) == list(headers)  # names, and their order, as sent


def test_during_a_rotation_both_signatures_are_masked():
    headers = sent(previous=PreviousSecret(OLD_SECRET, until=1_900_000_000))
    recorded = recorded_headers(headers)
    assert recorded["webhook-signature"] == "v1,**** v1,****"
    assert recorded["X-Webhook-Signature"] == recorded["X-Webhook-Signature-Next"] == "****"


def test_the_webhooks_own_header_values_are_masked_whatever_their_case():
    custom = (("Authorization", "Bearer tok"), ("x-team", "blue"))
    recorded = recorded_headers(sent(custom=custom), custom_names=["authorization", "X-Team"])
    assert (recorded["Authorization"], recorded["x-team"]) == ("****", "****")
    assert "tok" not in str(recorded) and "blue" not in str(recorded)


@pytest.mark.parametrize(
    ("value", "recorded"),
    [
        ("v1,abc=", "v1,****"),
        ("v1a,x v2,y", "v1a,**** v2,****"),
        ("no-scheme", "****"),
        ("", "****"),
    ],
)
def test_a_signature_of_any_shape_shows_no_more_than_its_scheme(value, recorded):
    assert recorded_headers({"Webhook-Signature": value}) == {"Webhook-Signature": recorded}
