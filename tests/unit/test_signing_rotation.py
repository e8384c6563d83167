"""Signing during a secret's rotation, how each scheme keys its HMAC, and which secrets a
webhook may be given (imported from another platform)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

import pytest
import standardwebhooks

from shared.signing import (
    PreviousSecret,
    check_secret,
    hex_signature,
    new_secret,
    signature_headers,
    standard_signature,
    verify_hex,
    verify_standard,
)

OLD, NEW = new_secret(), new_secret()
BODY = b'{"id":"e1","event":"participant.joined"}'
NOW = 1_780_000_000


def headers_at(timestamp: int, *, until: int = NOW + 60) -> dict[str, str]:
    previous = PreviousSecret(OLD, until=until)
    return signature_headers(NEW, msg_id="d1", timestamp=timestamp, body=BODY, previous=previous)


def test_during_the_overlap_the_old_secret_keeps_x_webhook_signature_and_both_sign_standard():
    headers = headers_at(NOW)
    assert headers["X-Webhook-Signature"] == hex_signature(OLD, BODY)
    assert headers["X-Webhook-Signature-Next"] == hex_signature(NEW, BODY)
    assert headers["webhook-signature"] == (
        f"{standard_signature(NEW, 'd1', NOW, BODY)} {standard_signature(OLD, 'd1', NOW, BODY)}"
    )
    for secret in (OLD, NEW):
        assert verify_standard(secret, BODY, headers, now=NOW)


@pytest.mark.parametrize("after_s", [0, 1, 86_400])
def test_from_the_end_of_the_overlap_only_the_new_secret_signs(after_s):
    headers = headers_at(NOW + 60 + after_s)
    assert "X-Webhook-Signature-Next" not in headers
    assert verify_hex(NEW, BODY, headers["X-Webhook-Signature"])
    assert " " not in headers["webhook-signature"]
    assert not verify_standard(OLD, BODY, headers, now=NOW + 60 + after_s)


def test_without_a_previous_secret_the_headers_are_as_before():
    plain = signature_headers(NEW, msg_id="d1", timestamp=NOW, body=BODY)
    assert headers_at(NOW, until=NOW) == plain
    assert set(plain) == {
        "X-Webhook-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }


def test_the_official_library_verifies_with_either_secret_during_the_overlap():
    now = int(time.time())  # the library checks the timestamp against the real clock
    headers = headers_at(now, until=now + 60)
    for secret in (OLD, NEW):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(BODY, headers)


# --- how each scheme keys its HMAC --------------------------------------------------------


def test_x_webhook_signature_keys_with_the_secret_string_itself():
    for secret in (NEW, "whsec_" + base64.b64encode(os.urandom(32)).decode()):
        expected = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
        assert hex_signature(secret, BODY) == expected


def test_the_standard_key_of_a_hex_secret_is_the_48_bytes_its_64_chars_decode_to_as_base64():
    key = base64.b64decode(NEW)
    assert len(key) == 48
    digest = hmac.new(key, b"d1.%d." % NOW + BODY, hashlib.sha256).digest()
    assert standard_signature(NEW, "d1", NOW, BODY) == "v1," + base64.b64encode(digest).decode()


def test_the_standard_key_of_a_whsec_secret_is_the_base64_after_the_prefix_decoded():
    raw = os.urandom(32)
    secret = "whsec_" + base64.b64encode(raw).decode()
    digest = hmac.new(raw, b"d1.%d." % NOW + BODY, hashlib.sha256).digest()
    assert standard_signature(secret, "d1", NOW, BODY) == "v1," + base64.b64encode(digest).decode()


# --- secrets a webhook may be given ---------------------------------------------------------


@pytest.mark.parametrize("size", [24, 32, 64])
@pytest.mark.parametrize("padded", [True, False])
def test_a_standard_webhooks_secret_is_accepted_and_keys_as_the_official_library_does(size, padded):
    raw = os.urandom(size)
    encoded = base64.b64encode(raw).decode()
    secret = "whsec_" + (encoded if padded else encoded.rstrip("="))
    assert check_secret(secret) == secret
    assert standardwebhooks.Webhook(secret)._whsecret == raw  # the key we sign with


def test_our_own_form_is_accepted():
    assert check_secret(NEW) == NEW


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("A" * 64, "64 lowercase hex"),
        ("0" * 63, "64 lowercase hex"),
        ("0" * 65, "64 lowercase hex"),
        ("", "64 lowercase hex"),
        ("wh_" + "A" * 40, "64 lowercase hex"),
        ("WHSEC_" + "A" * 40, "64 lowercase hex"),
        ("whsec_" + "A-_B" * 10, "not valid base64"),
        ("whsec_" + "A" * 39 + " ", "not valid base64"),
        ("whsec_" + "A" * 41, "not valid base64"),
        ("whsec_" + "A" * 42 + "=", "wrong base64 padding"),
        ("whsec_" + "A" * 42 + "B=", "not canonical"),
        ("whsec_" + base64.b64encode(os.urandom(23)).decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(os.urandom(65)).decode(), "24 to 64 bytes"),
        ("whsec_", "24 to 64 bytes"),
    ],
    ids=[
        "upper-hex", "short-hex", "long-hex", "empty", "other-prefix", "prefix-case",
        "urlsafe-alphabet", "space", "impossible-length", "bad-padding", "stray-bits",
        "too-short", "too-long", "no-key",
    ],
)  # fmt: skip
def test_any_other_secret_is_refused_with_its_reason(secret, reason):
    with pytest.raises(ValueError, match=reason):
        check_secret(secret)
