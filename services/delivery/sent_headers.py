"""The request headers an attempt is recorded with: those it was sent with, less what would
let a reader forge or replay a request. Pure.

Signatures keep only their scheme (`webhook-signature: v1,****`, one entry per secret during
a rotation); the hex signatures are `****`; the webhook's own headers keep their names with
every value `****`, as the API shows them to a MEMBER key (their values may be credentials).
Anyone who reads the delivery log may read these: MEMBER keys and portal sessions included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MASK = "****"
# Hex HMACs of the body (X-Webhook-Signature-Next: the new secret's, during a rotation).
_HEX_SIGNATURES = frozenset({"x-webhook-signature", "x-webhook-signature-next"})
_STANDARD_SIGNATURE = "webhook-signature"


def recorded_headers(
    sent: Mapping[str, str], *, custom_names: Iterable[str] = ()
) -> dict[str, str]:
    """`sent` as the attempt keeps it, names as sent; `custom_names`: the webhook's own."""
    secret = {name.lower() for name in custom_names} | _HEX_SIGNATURES
    recorded = {}
    for name, value in sent.items():
        lowered = name.lower()
        if lowered == _STANDARD_SIGNATURE:
            recorded[name] = " ".join(_scheme_only(entry) for entry in value.split(" "))
        elif lowered in secret:
            recorded[name] = MASK
        else:
            recorded[name] = value
    return recorded


def _scheme_only(entry: str) -> str:
    """`v1,<base64>` -> `v1,****`; anything without a scheme -> `****`."""
    scheme, comma, _ = entry.partition(",")
    return f"{scheme},{MASK}" if comma else MASK
