import re
import time

import pytest
import standardwebhooks

from shared.signing import (
    hex_signature,
    new_secret,
    signature_headers,
    standard_signature,
    verify_hex,
    verify_standard,
)

# A 64-hex-char secret, the shape the registry issues.
SECRET = "3f1c9a7e5b2d4f60a8c1e9b7d3f5a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5"
BODY = '{"event":"participant.joined","user":{"name":"Zoé 日本 🎉"}}'.encode()
# node -e "require('crypto').createHmac('sha256', SECRET).update(BODY).digest('hex')"
NODE_HEX = "1c9a9c589e9a05227c03e47885bc305d22dca6d543292dba2d1af1fd55400242"

# The example from the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_780_000_000


def headers_for(secret: str, body: bytes, *, timestamp: int = NOW) -> dict[str, str]:
    return signature_headers(secret, msg_id="dlv_1", timestamp=timestamp, body=body)


def test_hex_signature_matches_node_crypto_vector():
    assert hex_signature(SECRET, BODY) == NODE_HEX


def test_standard_signature_matches_spec_vector():
    signature = standard_signature(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert signature == SPEC_SIGNATURE


def test_official_library_verifies_our_standard_signature_for_a_hex_secret():
    # The library checks the timestamp against the real clock, so sign for the real now.
    headers = headers_for(SECRET, BODY, timestamp=int(time.time()))
    payload = standardwebhooks.Webhook(SECRET).verify(BODY, headers)
    assert payload == {"event": "participant.joined", "user": {"name": "Zoé 日本 🎉"}}


def test_official_library_rejects_our_signature_under_another_secret():
    headers = headers_for(SECRET, BODY, timestamp=int(time.time()))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(BODY, headers)


def test_signature_headers_carry_both_schemes():
    headers = headers_for(SECRET, BODY)
    assert headers == {
        "X-Webhook-Signature": NODE_HEX,
        "webhook-id": "dlv_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": standard_signature(SECRET, "dlv_1", NOW, BODY),
    }


def test_verify_hex_accepts_the_right_signature():
    assert verify_hex(SECRET, BODY, NODE_HEX)
    assert verify_hex(SECRET, BODY, NODE_HEX.upper())


@pytest.mark.parametrize(
    ("secret", "body", "signature"),
    [
        (SECRET, BODY + b" ", NODE_HEX),
        (new_secret(), BODY, NODE_HEX),
        (SECRET, BODY, NODE_HEX[:-1]),
        (SECRET, BODY, ""),
        (SECRET, BODY, "é" * 64),
    ],
    ids=["tampered-body", "wrong-secret", "truncated", "empty", "non-ascii"],
)
def test_verify_hex_rejects_a_mismatch(secret, body, signature):
    assert not verify_hex(secret, body, signature)


def test_verify_standard_accepts_our_headers_in_any_case():
    headers = {k.upper(): v for k, v in headers_for(SECRET, BODY).items()}
    assert verify_standard(SECRET, BODY, headers, now=NOW)


def test_verify_standard_accepts_the_spec_vector():
    headers = {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    assert verify_standard(SPEC_SECRET, SPEC_BODY, headers, now=SPEC_TIMESTAMP)


def test_verify_standard_accepts_any_of_several_signatures():
    headers = headers_for(SECRET, BODY)
    other = standard_signature(new_secret(), "dlv_1", NOW, BODY)
    headers["webhook-signature"] = f"v2,abc {other} junk {headers['webhook-signature']}"
    assert verify_standard(SECRET, BODY, headers, now=NOW)


def test_verify_standard_rejects_tampered_body_and_wrong_secret():
    headers = headers_for(SECRET, BODY)
    assert not verify_standard(SECRET, BODY + b" ", headers, now=NOW)
    assert not verify_standard(new_secret(), BODY, headers, now=NOW)


def test_verify_standard_rejects_a_timestamp_outside_the_tolerance():
    headers = headers_for(SECRET, BODY)
    assert verify_standard(SECRET, BODY, headers, now=NOW + 300)
    assert not verify_standard(SECRET, BODY, headers, now=NOW + 301)
    assert not verify_standard(SECRET, BODY, headers, now=NOW - 301)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": ""},
        {"webhook-id": "dlv_2"},
        {"webhook-timestamp": "soon"},
        {"webhook-timestamp": str(NOW + 1)},
        {"webhook-signature": ""},
        {"webhook-signature": "v1,not base64!"},
        {"webhook-signature": "v1"},
    ],
)
def test_verify_standard_rejects_bad_headers(change):
    headers = {**headers_for(SECRET, BODY), **change}
    assert not verify_standard(SECRET, BODY, headers, now=NOW)


def test_new_secret_is_64_lowercase_hex_chars_and_fresh():
    secret = new_secret()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert new_secret() != secret
