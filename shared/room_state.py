"""The keys of `roomhooks.room-state`: `<org>/<room>/kv/<store>/<key>` for a KV entry,
`<org>/<room>/file/<path>` for a file's metadata; a null value deletes. Room services (and
`roomhooks state`) write them; the workflow runner projects them for the bindings.
"""

from __future__ import annotations


class InvalidStateKey(ValueError):
    """Not a room-state key, or not parts one can be made of."""


def state_key(org: str, room_id: str, kind: str, *names: str) -> str:
    """The key a room service writes for `kind` ("kv": store and key; "file": path)."""
    for part in (org, room_id):
        if "/" in part or not part:
            raise InvalidStateKey(f"ids may not be empty or hold '/': {part!r}")
    return "/".join((org, room_id, kind, *names))
