"""docs/asyncapi.json: generated from the message models, checked in, and a valid AsyncAPI 3.0
document whose schemas accept what the services write and refuse what they refuse."""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft7Validator
from pydantic import ValidationError, create_model

from devtool import asyncapi
from shared import events, messages
from shared.kafka import Topics
from shared.room_state import state_key

with warnings.catch_warnings():  # its models shadow BaseModel.schema: harmless, noisy
    warnings.simplefilter("ignore", UserWarning)
    from asyncapi3.models import AsyncAPI3

NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
ORG = "7f0c5c51-3b8a-4b5e-9f61-2a3c4d5e6f70"
WEBHOOK = "0b8e1f6e-8a55-4c1e-9d7f-1e2d3c4b5a69"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi.build()


def payload_validator(document: dict[str, Any], channel: str, message: str) -> Draft7Validator:
    """A validator for one message's payload, its `$ref`s resolved in the whole document."""
    payload = document["channels"][channel]["messages"][message]["payload"]
    return Draft7Validator({**document, **payload})


def test_checked_in_document_is_what_the_models_generate():
    assert asyncapi.DOCUMENT.read_text(encoding="utf-8") == asyncapi.render(asyncapi.build())
    assert asyncapi.main(["--check"]) == 0


def _with_note(model: type) -> type:
    return create_model(model.__name__, __base__=model, note=(str, ...))


def _change_disable_webhook(monkeypatch):
    monkeypatch.setattr(messages, "DisableWebhook", _with_note(messages.DisableWebhook))


def _change_participant_event(monkeypatch):
    changed = _with_note(events.ParticipantEvent)
    catalog = {
        name: dataclasses.replace(spec, payload_model=changed)
        if spec.payload_model is events.ParticipantEvent
        else spec
        for name, spec in events.CATALOG.items()
    }
    monkeypatch.setattr(events, "CATALOG", catalog)


@pytest.mark.parametrize("change", [_change_disable_webhook, _change_participant_event])
def test_lint_check_fails_when_a_message_model_changes_without_the_document(
    change, monkeypatch, capsys
):
    change(monkeypatch)
    assert asyncapi.render(asyncapi.build()) != asyncapi.DOCUMENT.read_text(encoding="utf-8")
    assert asyncapi.main(["--check"]) == 1
    assert "python -m devtool.asyncapi" in capsys.readouterr().err


def test_lint_check_fails_when_the_document_is_missing(tmp_path):
    assert asyncapi.main(["--check", "--path", str(tmp_path / "asyncapi.json")]) == 1


def test_document_validates_against_the_asyncapi_3_object_model(document):
    AsyncAPI3.model_validate(document)


def test_the_validator_refuses_a_broken_document(document):
    broken = copy.deepcopy(document)
    broken["operations"]["send_events"]["action"] = "publish"  # AsyncAPI 2's verb
    with pytest.raises(ValidationError):
        AsyncAPI3.model_validate(broken)


def test_every_reference_resolves(document):
    def refs(node: Any):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]


def test_every_schema_is_a_valid_json_schema(document):
    for schema in document["components"]["schemas"].values():
        Draft7Validator.check_schema(schema)


def test_a_channel_for_every_topic_with_its_compaction(document):
    topics = Topics()
    channels = document["channels"].values()
    assert {c["address"] for c in channels} == set(topics.all())
    for channel in channels:
        compacted = topics.all()[channel["address"]].get("cleanup.policy") == "compact"
        configuration = channel["bindings"]["kafka"].get("topicConfiguration", {})
        assert (configuration.get("cleanup.policy") == ["compact"]) == compacted


def test_an_event_message_for_every_catalog_entry(document):
    names = [m["name"] for m in document["channels"]["events"]["messages"].values()]
    assert names == list(events.CATALOG)


def test_a_valid_event_matches_its_message_and_not_another(document):
    body = events.build_event(
        event="participant.joined",
        organization_id=ORG,
        room={"id": "room-1", "name": "Design review"},
        user={"id": "user-1"},
        now=NOW,
    )
    assert payload_validator(document, "events", "participant_joined").is_valid(body)
    assert not payload_validator(document, "events", "participant_left").is_valid(body)
    no_room = {k: v for k, v in body.items() if k != "room"}
    assert not payload_validator(document, "events", "participant_joined").is_valid(no_room)


def test_what_the_services_write_matches_its_payload_schema(document):
    request = messages.DeliveryRequested(
        delivery_id=messages.delivery_id_for(WEBHOOK, "e-1"),
        webhook_id=WEBHOOK,
        organization_id=ORG,
        event_id="e-1",
        event="participant.joined",
        body="{}",
        created_at=NOW,
    ).model_dump(mode="json")
    check = payload_validator(document, "deliveries", "DeliveryRequested")
    assert check.is_valid(request)
    assert not check.is_valid({**request, "extra": 1})  # extra="forbid" in the model
    assert not check.is_valid({**request, "webhook_id": "not-a-uuid"})
    command = messages.DisableWebhook(
        webhook_id=WEBHOOK, organization_id=ORG, reason="410", requested_at=NOW
    ).model_dump(mode="json")
    assert payload_validator(document, "registryCommands", "DisableWebhook").is_valid(command)


@pytest.mark.parametrize(
    ("message", "parts"),
    [("KvEntry", ("kv", "settings", "theme")), ("FileMetadata", ("file", "docs/a.pdf"))],
)
def test_room_state_keys_match_the_documented_patterns(document, message, parts):
    key_schema = document["channels"]["roomState"]["messages"][message]["bindings"]["kafka"]
    pattern = key_schema["key"]["pattern"]
    assert re.search(pattern, state_key(ORG, "room-1", *parts))
    other = "kv" if parts[0] == "file" else "file"
    assert not re.search(pattern, state_key(ORG, "room-1", other, "x", "y"))
