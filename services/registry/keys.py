"""API keys and portal tokens: minted once, shown once, stored as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "rhk_"  # noqa: S105 - a prefix, not a secret
# A portal session's token, and the one-time link token exchanged for it: the prefix tells
# the Authorizer which table to look in, and a leaked token what it is.
PORTAL_SESSION_PREFIX = "rhp_"
PORTAL_LINK_PREFIX = "rhl_"


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    """`prefix` and 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # A 256-bit random token needs no slow hash: SHA-256 is preimage-resistant enough and
    # lets each request find its key with one indexed lookup.
    return hashlib.sha256(token.encode()).hexdigest()


# Enough to tell an account's keys apart in a list; far too little to guess the rest (the
# 256 random bits after the prefix are unaffected).
DISPLAY_PREFIX_LENGTH = 8


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token
