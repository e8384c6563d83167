"""API keys as stored (ApiKeyRow when minted, ApiKey as read back) and as the HTTP API reads
and answers them. The token itself is never stored, and no answer but a create's holds it.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    field_serializer,
    field_validator,
)

from services.registry.bodies import StrictBody
from services.registry.keys import DISPLAY_PREFIX_LENGTH
from shared.events import format_timestamp

MAX_LABEL_LENGTH = 100
# RFC 3339's date-time: a full date, a full time and an offset (`Z` or `+hh:mm`).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


@dataclass(frozen=True)
class KeyOwner:
    """Who a key speaks for: its account and role."""

    account_id: UUID
    role: str


@dataclass(frozen=True)
class ApiKeyRow:
    """A key as minted: the SHA-256 of its token, never the token."""

    id: UUID
    account_id: UUID
    role: str
    token_sha256: str
    token_prefix: str  # shown to people to tell keys apart; never enough to use one
    created_at: datetime
    label: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    """A stored key as its account sees it: everything but the token and its digest."""

    id: UUID
    account_id: UUID
    role: str
    label: str | None
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def prefix(self) -> str:
        """The key's first characters, as lists show them."""
        return self.token_prefix[:DISPLAY_PREFIX_LENGTH]

    @property
    def owner(self) -> KeyOwner:
        return KeyOwner(self.account_id, self.role)

    def live(self, now: datetime) -> bool:
        """Not revoked, and not expired at `now`: it authenticates."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def check_label(label: str | None) -> str | None:
    """A label shown in lists and terminals: no control or format characters (a bidi
    override would disguise what a key is called)."""
    if label is None:
        return None
    for ch in label:
        if unicodedata.category(ch) in ("Cc", "Cf"):
            raise ValueError(f"must not contain control or format characters (U+{ord(ch):04X})")
    return label


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 date-time string with its offset, as an aware datetime in UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2030-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("is not a date-time that exists") from None


class ApiKeyInput(StrictBody):
    """POST body: the new key's role, and optionally a label and when it stops working."""

    role: Literal["OWNER", "ADMIN", "MEMBER"] = Field(
        description="OWNER manages keys; OWNER and ADMIN write; MEMBER only reads."
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LABEL_LENGTH,
        description="A name for people (no control characters); null or absent: none.",
    )
    expires_at: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices("expiresAt", "expires_at"),
        description="When the key stops working (RFC 3339, in the future); null: never.",
    )

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return check_label(value)

    @field_validator("expires_at", mode="before")
    @classmethod
    def _expires_at(cls, value: Any) -> datetime | None:
        return parse_rfc3339(value)


class ApiKeyInfo(BaseModel):
    """An API key without its secret: `prefix` is the first 8 characters of the key."""

    model_config = ConfigDict(frozen=True)

    id: str
    account_id: str
    label: str | None
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="To the minute; null: never used.")
    expires_at: datetime | None
    revoked_at: datetime | None

    @field_serializer("created_at", "last_used_at", "expires_at", "revoked_at", when_used="json")
    def _timestamps(self, value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyInfo:
        return cls(
            id=str(key.id),
            account_id=str(key.account_id),
            label=key.label,
            role=key.role,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyWithToken(ApiKeyInfo):
    """Only ever in the 201 answer to POST."""

    key: str = Field(description="The API key itself: shown once, stored only as a hash.")


class ApiKeyData(BaseModel):
    api_key: ApiKeyInfo


class ApiKeyCreatedData(BaseModel):
    api_key: ApiKeyWithToken


class ApiKeyListData(BaseModel):
    api_keys: list[ApiKeyInfo]
    next_cursor: str | None


class KeyCallerData(BaseModel):
    """An API key made the request: its account, id, role and label."""

    account_id: str
    kind: Literal["key"]
    key_id: str
    role: str
    label: str | None


class PortalCallerData(BaseModel):
    """A customer portal session made the request: its account, the webhooks it manages and
    until when."""

    account_id: str
    kind: Literal["portal"]
    role: None = Field(description="Always null: a portal session has no role.")
    read_only: bool
    webhook_ids: list[str] | None = Field(description="null: every webhook of the account.")
    expires_at: datetime

    @field_serializer("expires_at", when_used="json")
    def _timestamp(self, value: datetime) -> str:
        return format_timestamp(value)


class CallerData(
    RootModel[Annotated[KeyCallerData | PortalCallerData, Field(discriminator="kind")]]
):
    """Who made the request: an API key (`kind` key) or a customer portal session (`kind`
    portal)."""
