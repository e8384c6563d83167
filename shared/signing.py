"""Webhook signatures: the seed's hex HMAC and Standard Webhooks. Pure, stdlib only.

Every delivery carries both, computed from the same secret string (ours: 64 hex chars; an
imported one: `whsec_<base64>`):
- `X-Webhook-Signature`: hex HMAC-SHA256 of the body, key = the secret's UTF-8 bytes, exactly
  what Node's `createHmac('sha256', secret).update(body).digest('hex')` gives (as the CollabKit and
  organization webhooks documents verify);
- `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` per
  https://www.standardwebhooks.com, with the key the official `standardwebhooks` libraries
  derive from that same string (optional `whsec_` prefix removed, the rest base64-decoded; a
  64-hex-char string is valid base64, so the key is its 48 decoded bytes).

During a rotation's overlap (`PreviousSecret`) both secrets sign: `webhook-signature` lists
one entry per secret, `X-Webhook-Signature` stays the old secret's (one value: receivers
compare buffers of equal length) and `X-Webhook-Signature-Next` is the new one's.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

_STANDARD_PREFIX = "whsec_"
_STANDARD_VERSION = "v1"


def new_secret() -> str:
    """A fresh webhook secret: 64 lowercase hex chars (256 random bits)."""
    return secrets.token_hex(32)


# An imported Standard Webhooks secret's key: at least 192 bits, at most one SHA-256 block.
IMPORTED_KEY_BYTES = (24, 64)
_HEX_SECRET = re.compile(r"[0-9a-f]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def check_secret(secret: str) -> str:
    """`secret` when it is one a webhook may be given: our 64 lowercase hex characters, or a
    Standard Webhooks `whsec_<base64>` secret whose key is 24 to 64 bytes; else ValueError
    saying why.

    The base64 is read strictly (standard alphabet, padding optional but right, nothing
    after it), so the key we sign with is the key every official library derives from it.
    """
    if _HEX_SECRET.fullmatch(secret):
        return secret
    if not secret.startswith(_STANDARD_PREFIX):
        raise ValueError(
            "must be 64 lowercase hex characters or a Standard Webhooks secret (whsec_ and"
            " the key in base64)"
        )
    encoded = secret.removeprefix(_STANDARD_PREFIX)
    unpadded = encoded.rstrip("=")
    if not _BASE64.fullmatch(encoded) or len(unpadded) % 4 == 1:
        raise ValueError("is not valid base64 after whsec_ (standard alphabet: A-Z a-z 0-9 + /)")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    if encoded != unpadded and encoded != padded:
        raise ValueError("has wrong base64 padding after whsec_")
    key = base64.b64decode(padded, validate=True)
    if base64.b64encode(key).decode("ascii") != padded:
        raise ValueError("is not canonical base64 after whsec_ (stray bits in its last character)")
    low, high = IMPORTED_KEY_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"must hold a key of {low} to {high} bytes (this one has {len(key)})")
    return secret


# Secrets whose keyed HMAC states are kept (each two SHA-256 states; a delivery process
# signs for the webhooks it sends to, and its targets cache holds their secrets anyway).
_KEYED_SECRETS = 4096


def hex_signature(secret: str, body: bytes) -> str:
    """`X-Webhook-Signature`: lowercase hex HMAC-SHA256 of `body`, keyed with the secret."""
    mac = _hex_mac(secret).copy()
    mac.update(body)
    return mac.hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature` for one message: `v1,` + base64 HMAC of `{id}.{timestamp}.{body}`."""
    digest = _standard_digest(secret, msg_id, timestamp, body)
    return f"{_STANDARD_VERSION},{base64.b64encode(digest).decode('ascii')}"


@dataclass(frozen=True)
class PreviousSecret:
    """The secret a rotation replaced: it still signs until `until` (Unix seconds, excluded)."""

    secret: str
    until: int

    def live_at(self, timestamp: int) -> bool:
        return timestamp < self.until


def signature_headers(
    secret: str,
    *,
    msg_id: str,
    timestamp: int,
    body: bytes,
    previous: PreviousSecret | None = None,
) -> dict[str, str]:
    """The signature headers of one delivery attempt (`timestamp` in Unix seconds).

    While `previous` is live at `timestamp`, it signs `X-Webhook-Signature`, `secret` signs
    `X-Webhook-Signature-Next`, and `webhook-signature` carries both (the newest first).
    """
    standard = standard_signature(secret, msg_id, timestamp, body)
    headers = {
        "X-Webhook-Signature": hex_signature(secret, body),
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
    }
    if previous is not None and previous.live_at(timestamp):
        old = standard_signature(previous.secret, msg_id, timestamp, body)
        headers["X-Webhook-Signature"] = hex_signature(previous.secret, body)
        headers["X-Webhook-Signature-Next"] = hex_signature(secret, body)
        headers["webhook-signature"] = f"{standard} {old}"
    return headers


def verify_hex(secret: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the hex HMAC of `body`; constant time in the signature's content."""
    expected = hex_signature(secret, body).encode("ascii")
    given = signature.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def verify_standard(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: int,
    tolerance_s: int = 300,
) -> bool:
    """Whether the Standard Webhooks headers sign `body` and are within `tolerance_s` of `now`.

    Header names are matched case-insensitively; `webhook-signature` may list several
    space-separated `v1,<base64>` signatures (secret rotation), any one of which may match.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    sent_at = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not signatures or not sent_at.isascii() or not sent_at.isdigit():
        return False
    timestamp = int(sent_at)
    # The tolerance bounds replays of a captured request.
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _standard_digest(secret, msg_id, timestamp, body)
    matched = False
    for entry in signatures.split(" "):
        version, _, encoded = entry.partition(",")
        if version != _STANDARD_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(expected, given)
    return matched


def _standard_digest(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    mac = _standard_mac(secret).copy()
    mac.update(f"{msg_id}.{timestamp}.".encode())
    mac.update(body)
    return mac.digest()


# The key schedule (hashing the padded key: two SHA-256 blocks) is paid once per secret, not
# once per signature: each signature copies the keyed state (1.4 against 2.2 us a signature,
# and the Standard Webhooks key is base64-decoded once). A failure is raised, never cached.
@functools.lru_cache(maxsize=_KEYED_SECRETS)
def _hex_mac(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=_KEYED_SECRETS)
def _standard_mac(secret: str) -> hmac.HMAC:
    return hmac.new(_standard_key(secret), digestmod=hashlib.sha256)


def _standard_key(secret: str) -> bytes:
    # Exactly standardwebhooks.Webhook.__init__, so its verify() accepts our signatures:
    # appending "==" makes unpadded base64 decode (b64decode ignores surplus padding).
    key = base64.b64decode(secret.removeprefix(_STANDARD_PREFIX) + "==")
    if not key:
        raise ValueError("webhook secret may not be empty")
    return key
