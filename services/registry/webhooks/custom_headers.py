"""Which headers a webhook may send with every request, and how they are shown. Pure.

Values may be credentials (a token the endpoint checks): they are stored sealed like the
secret (`shared.secrets_box.seal_headers`), shown to OWNER and ADMIN keys, masked for MEMBER.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

MAX_HEADERS = 20
MAX_VALUE_BYTES = 1024
MAX_NAME_LENGTH = 256
MASK = "****"
# RFC 9110 §5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Set by roomhooks on every request or framing it, or hop-by-hop (RFC 9110 §7.6.1).
_REFUSED = frozenset(
    {
        "host", "content-length", "content-type", "transfer-encoding", "connection",
        "user-agent", "accept-encoding", "keep-alive", "proxy-connection", "te", "trailer",
        "upgrade",
    }
)  # fmt: skip
# The signature headers and every other name of either scheme.
_REFUSED_PREFIXES = ("webhook-", "x-webhook-")
# RFC 9110 §5.5: a field value holds no control character but HTAB.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_problem(name: str, value: str, *, seen: set[str]) -> str | None:
    """Why `name: value` may not be sent (None: it may); `seen` holds the lower-cased names
    accepted before it, and gains this one."""
    lowered = name.lower()
    if len(name) > MAX_NAME_LENGTH:
        return f"a header name is at most {MAX_NAME_LENGTH} characters"
    if not _TOKEN.fullmatch(name):
        return "is not a valid header name (an RFC 9110 token: letters, digits, !#$%&'*+-.^_`|~)"
    if lowered in _REFUSED or lowered.startswith(_REFUSED_PREFIXES):
        return "is set by roomhooks (or is hop-by-hop) and cannot be overridden"
    if lowered in seen:
        return "is given twice (header names are case-insensitive)"
    if "\r" in value or "\n" in value or "\x00" in value:
        return "must not contain CR, LF or NUL"
    if _CONTROL.search(value):
        return "must not contain control characters (tab is allowed)"
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        return f"must be at most {MAX_VALUE_BYTES} bytes"
    seen.add(lowered)
    return None


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """`headers` when every one may be sent; else a ValidationError naming `headers.<name>`
    for each refusal (pydantic nests it under the field). A name too long to quote is
    shortened in the path."""
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    errors: list[InitErrorDetails] = []
    for name, value in headers.items():
        problem = header_problem(name, value, seen=seen)
        if problem is not None:
            shown = name if len(name) <= 64 else name[:64] + "…"
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("value_error", problem),
                    loc=(shown,),
                    input="",  # never the value: it may be a credential
                )
            )
    if errors:
        raise ValidationError.from_exception_data("headers", errors)
    return headers


def masked(headers: dict[str, str]) -> dict[str, str]:
    """What a MEMBER key sees: the names, each value as `****`."""
    return dict.fromkeys(headers, MASK)
