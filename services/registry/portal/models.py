"""Portal sessions as stored (PortalSessionRow), as the Authorizer finds them (PortalSession),
and as the HTTP API reads and answers them. Neither token is stored, only its SHA-256.

The pydantic models also feed /openapi.json: their docstrings and descriptions are its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AliasChoices, BaseModel, Field, Strict, field_serializer, field_validator

from services.registry.bodies import StrictBody
from shared.events import format_timestamp

MAX_WEBHOOK_IDS = 100
TTL_DEFAULT_S = 3_600
TTL_MIN_S = 60
TTL_MAX_S = 86_400


@dataclass(frozen=True)
class PortalSessionRow:
    """A session as made: the link's digest, never the link."""

    id: UUID
    account_id: UUID
    webhook_ids: tuple[UUID, ...] | None  # None: every webhook of the account
    read_only: bool
    link_hash: str
    expires_at: datetime
    created_at: datetime
    created_by: UUID | None  # the API key that made it


@dataclass(frozen=True)
class PortalSession:
    """An exchanged session, as the Authorizer finds it by its token's digest (expired ones
    too: their holder is told so)."""

    id: UUID
    account_id: UUID
    webhook_ids: frozenset[UUID] | None  # None: every webhook of the account
    read_only: bool
    expires_at: datetime
    created_by: UUID | None

    def live(self, now: datetime) -> bool:
        return self.expires_at > now

    def reaches(self, webhook_id: UUID) -> bool:
        """The session may see and manage this webhook (if the account has it)."""
        return self.webhook_ids is None or webhook_id in self.webhook_ids


# Lax for each item, as JSON can only send a UUID as a string: the rest of the body is strict.
WebhookId = Annotated[UUID, Strict(False)]


class PortalSessionInput(StrictBody):
    """POST body (optional): which webhooks the session manages, whether it only reads, and
    how long its link and session live."""

    webhook_ids: list[WebhookId] | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_IDS,
        validation_alias=AliasChoices("webhookIds", "webhook_ids"),
        description="The account's webhooks the session manages (and those it creates);"
        " null or absent: every webhook of the account.",
        json_schema_extra={"uniqueItems": True},
    )
    read_only: bool = Field(
        default=False,
        validation_alias=AliasChoices("readOnly", "read_only"),
        description="True: the session reads only.",
    )
    ttl_seconds: int = Field(
        default=TTL_DEFAULT_S,
        ge=TTL_MIN_S,
        le=TTL_MAX_S,
        validation_alias=AliasChoices("ttlSeconds", "ttl_seconds"),
        description="Seconds until the link, and the session it is exchanged for, expire.",
    )

    @field_validator("webhook_ids")
    @classmethod
    def _unique(cls, ids: list[UUID] | None) -> list[UUID] | None:
        if ids is None:
            return None
        seen: set[UUID] = set()
        duplicates = sorted({str(i) for i in ids if i in seen or seen.add(i)})
        if duplicates:
            raise ValueError(f"duplicate ids: {', '.join(duplicates)}")
        return ids


class PortalExchangeInput(StrictBody):
    """POST body: the link's token, from the fragment of the portal URL."""

    token: str = Field(min_length=1, max_length=512, description="The link's token (`rhl_…`).")


class PortalLinkData(BaseModel):
    """The portal link to hand to the customer: it works once, until `expires_at`."""

    url: str = Field(description="`<public URL>/console/portal#token=<link token>`.")
    expires_at: datetime

    @field_serializer("expires_at", when_used="json")
    def _timestamp(self, value: datetime) -> str:
        return format_timestamp(value)


class PortalSessionData(BaseModel):
    """The session a link was exchanged for: use `session_token` as a Bearer token."""

    session_token: str = Field(description="The session's token (`rhp_…`): shown once.")
    expires_at: datetime
    account_id: str
    webhook_ids: list[str] | None = Field(description="null: every webhook of the account.")
    read_only: bool

    @field_serializer("expires_at", when_used="json")
    def _timestamp(self, value: datetime) -> str:
        return format_timestamp(value)

    @classmethod
    def of(cls, session: PortalSession, token: str) -> PortalSessionData:
        return cls(
            session_token=token,
            expires_at=session.expires_at,
            account_id=str(session.account_id),
            webhook_ids=webhook_id_list(session.webhook_ids),
            read_only=session.read_only,
        )


def webhook_id_list(ids: frozenset[UUID] | None) -> list[str] | None:
    return None if ids is None else sorted(str(i) for i in ids)
