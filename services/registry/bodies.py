"""What every request body shares: strict parsing, text Postgres can store, and the fields
webhooks and workflows both have (events, room scope).

Request bodies are strict (`extra="forbid"`, no type coercion) so a typo is a 400 that names
the field instead of a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from services.registry.policy import check_storable_text
from shared.events import CATALOG

ROOM_ID_FIELD = Field(
    default=None,
    min_length=1,
    max_length=200,
    validation_alias=AliasChoices("roomId", "room_id"),
    description="Scope the webhook to one room; null or absent: every room.",
)
# What the validators accept, also said in /openapi.json so clients (and the fuzzer) can see it;
# the validators still decide, with messages that name what is wrong.
EVENTS_SCHEMA = {"minItems": 1, "uniqueItems": True}
EventName = Annotated[str, Field(json_schema_extra={"enum": sorted(CATALOG)})]
EVENTS_FIELD = Field(
    description="Event names to subscribe to (GET /v1/event-types); at least one.",
    max_length=100,
    json_schema_extra=EVENTS_SCHEMA,
)


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_storable_text(value)
