"""Webhook secrets and custom headers sealed at rest: Fernet (`cryptography`) under operator keys.

`ROOMHOOKS_SECRETS_KEY` holds one or more Fernet keys, comma-separated, newest first: the
first seals, every one opens. A sealed secret is `<key id>:<Fernet token>`, where the key id is
the first 8 hex characters of the SHA-256 of the key, so a row names the key that sealed it:
rotation is "put the new key in front, restart, let the registry re-seal, drop the old key".
Fernet authenticates what it encrypts: a wrong key or an altered value never opens.

No message here ever carries key material or a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken

from shared.settings import SecretsSettings

KEY_SETTING = "ROOMHOOKS_SECRETS_KEY"
_SEPARATOR = ":"


class SecretsKeyError(ValueError):
    """The key setting is missing or malformed; the message says which key, never its value."""


class UnreadableSecret(Exception):
    """A sealed secret that none of the keys opens; the message says why."""


def generate_key() -> str:
    """A fresh key for `ROOMHOOKS_SECRETS_KEY` (32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def _fernet(key: str, position: int) -> Fernet:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SecretsKeyError(
            f"key {position} of {KEY_SETTING} is not a Fernet key (32 bytes, url-safe base64,"
            " 44 characters)"
        )
    return Fernet(key)


class SecretsBox:
    """Seals with the first key, opens with whichever key a sealed value names."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretsKeyError(f"{KEY_SETTING} holds no key")
        self._fernets: dict[str, Fernet] = {}
        for position, key in enumerate(keys, start=1):
            fernet = _fernet(key, position)
            kid = key_id(key)
            if kid in self._fernets:
                raise SecretsKeyError(f"key {position} of {KEY_SETTING} is listed twice")
            self._fernets[kid] = fernet
        self.current_key_id = key_id(keys[0])

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, newest first."""
        return tuple(self._fernets)

    def seal(self, secret: str) -> str:
        token = self._fernets[self.current_key_id].encrypt(secret.encode("utf-8"))
        return f"{self.current_key_id}{_SEPARATOR}{token.decode('ascii')}"

    def open(self, sealed: str) -> str:
        kid, separator, token = sealed.partition(_SEPARATOR)
        if not separator or not token:
            raise UnreadableSecret("the stored secret is not in the sealed format")
        fernet = self._fernets.get(kid)
        if fernet is None:
            raise UnreadableSecret(
                f"the secret was sealed with key {kid}, which {KEY_SETTING} does not hold"
            )
        try:
            return fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise UnreadableSecret(
                f"the secret sealed with key {kid} does not open (altered or corrupt)"
            ) from exc

    def sealed_with(self, sealed: str) -> str:
        """The id of the key that sealed `sealed` (it may be one this box lacks)."""
        return sealed.partition(_SEPARATOR)[0]

    def reseal(self, sealed: str) -> str:
        """`sealed` under the newest key (raises UnreadableSecret like `open`)."""
        return self.seal(self.open(sealed))


def seal_headers(box: SecretsBox, headers: Mapping[str, str]) -> str | None:
    """A webhook's custom headers sealed as one JSON object (their values may be
    credentials); None when it has none."""
    return box.seal(json.dumps(dict(headers))) if headers else None


def open_headers(box: SecretsBox, sealed: str | None) -> dict[str, str]:
    """What `seal_headers` sealed (raises UnreadableSecret like `open`)."""
    return json.loads(box.open(sealed)) if sealed is not None else {}


def parse_keys(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def load_box(settings: SecretsSettings) -> SecretsBox:
    """The box the setting describes; SecretsKeyError when it is unset or malformed."""
    keys = parse_keys(settings.key.get_secret_value() if settings.key else None)
    if not keys:
        raise SecretsKeyError(
            f"{KEY_SETTING} is not set: the services that hold webhook secrets need it (make run"
            f" writes one into .roomhooks/run.env; make one with `roomhooks secrets-key`)"
        )
    return SecretsBox(keys)
