"""The AsyncAPI 3.0 document of our topics, built from the models the services validate with.

`docs/asyncapi.json` is this module's output, checked in: `python -m devtool.asyncapi` writes
it, `python -m devtool.asyncapi --check` (in `make lint`) fails when it differs from what the
models generate. Tooling only: no service imports this module.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import dead_letters, events, messages
from shared.kafka import Topics

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
_REF = "#/components/schemas/{model}"
_JSON_HEADERS = {"$ref": _REF.format(model="JsonHeaders")}


def _key(description: str, **schema: Any) -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", **schema, "description": description},
            "bindingVersion": "0.5.0",
        }
    }


def _message(
    name: str,
    payload: dict[str, Any],
    key: dict[str, Any],
    *,
    summary: str,
    description: str | None = None,
    headers: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "title": name, "summary": summary}
    if description:
        out["description"] = description
    out |= {"contentType": content_type, "headers": headers or _JSON_HEADERS}
    return out | {"payload": payload, "bindings": key}


def _model(model: type[BaseModel], key: dict[str, Any]) -> dict[str, Any]:
    doc = (model.__doc__ or model.__name__).strip()
    first, _, rest = doc.partition("\n\n")
    ref = {"$ref": _REF.format(model=model.__name__)}
    return _message(
        model.__name__,
        ref,
        key,
        summary=" ".join(first.split()),
        description=" ".join(rest.split()) or None,
    )


def _tombstone(key: dict[str, Any]) -> dict[str, Any]:
    return _message(
        "Deleted",
        {"type": "null"},
        key,
        headers={"type": "object"},
        summary="A null value: the record under this key is deleted.",
    )


def _event_messages(key: dict[str, Any]) -> dict[str, Any]:
    """One message per catalog entry: its payload model, with `event` fixed to its name."""
    out = {}
    for name, spec in events.CATALOG.items():
        payload = {
            "allOf": [
                {"$ref": _REF.format(model=spec.payload_model.__name__)},
                {"properties": {"event": {"const": name}}},
            ]
        }
        summary = f"{spec.description} ({spec.scope.value} event)."
        # Map keys take letters, digits, `-` and `_`: the event's name stays in `name`.
        out[name.replace(".", "_")] = _message(name, payload, key, summary=summary)
    return out


def _dead_letter() -> dict[str, Any]:
    where = {
        dead_letters.H_TOPIC: "the topic it was read from",
        dead_letters.H_PARTITION: "its partition, in decimal",
        dead_letters.H_OFFSET: "its offset, in decimal",
    }
    headers = {
        "type": "object",
        "properties": {
            dead_letters.H_ERROR: {
                "type": "string",
                "maxLength": dead_letters.REASON_MAX_CHARS,
                "description": "why it was refused",
            },
            **{h: {"type": "string", "description": d} for h, d in where.items()},
        },
        "required": [dead_letters.H_ERROR, *where],
        "additionalProperties": True,
        "description": "The original record's headers, then why and where from.",
    }
    cut = dead_letters.CUT_BYTES // 1024
    return _message(
        "DeadLetter",
        {"description": "The rejected value, as received (not always JSON)."},
        _key("The rejected record's key, as received."),
        headers=headers,
        content_type="application/octet-stream",
        summary="A record a consumer could not accept, set aside with its reason.",
        description=f"A value too large to forward whole keeps its first {cut} KiB, "
        "and the reason says so.",
    )


def _registry_messages() -> dict[str, Any]:
    return {
        "WebhookRecord": _model(
            messages.WebhookRecord, _key("`webhook:<id>`.", pattern="^webhook:.+$")
        ),
        "WorkflowRecord": _model(
            messages.WorkflowRecord, _key("`workflow:<id>`.", pattern="^workflow:.+$")
        ),
        "Deleted": _tombstone(
            _key("`webhook:<id>` or `workflow:<id>`.", pattern="^(webhook|workflow):.+$")
        ),
    }


def _room_state_messages() -> dict[str, Any]:
    kv_key = _key("`<org>/<room>/kv/<store>/<key>`", pattern="^[^/]+/[^/]+/kv/[^/]+/.+$")
    file_key = _key("`<org>/<room>/file/<path>`", pattern="^[^/]+/[^/]+/file/.+$")
    state_key = _key("A KV or file key, as above.", pattern="^[^/]+/[^/]+/(kv|file)/.+$")
    kv = _message(
        "KvEntry",
        {"description": "Any JSON value."},
        kv_key,
        summary="The value of one KV entry of a room.",
    )
    file = _message(
        "FileMetadata",
        {"type": "object", "additionalProperties": True},
        file_key,
        summary="The metadata of one file of a room, a JSON object.",
    )
    return {"KvEntry": kv, "FileMetadata": file, "Deleted": _tombstone(state_key)}


def _channels(topics: Topics) -> dict[str, tuple[str, str, dict[str, Any], str, str]]:
    """Channel id -> (address, description, messages, written by, read by)."""
    event_key = _key("The room id, else the organization id (per-room order).")
    webhook_key = _key("The webhook id.", format="uuid")
    workflow_key = _key("The workflow id.", format="uuid")
    channels = {
        "events": (
            topics.events,
            "Room and organization events, in.",
            _event_messages(event_key),
            "room services, registry",
            "fanout, workflow_runner",
        ),
        "registry": (
            topics.registry,
            "Compacted: the last record per key is the truth.",
            _registry_messages(),
            "registry",
            "fanout, delivery",
        ),
        "registryCommands": (
            topics.registry_commands,
            "Orders to the registry.",
            {"DisableWebhook": _model(messages.DisableWebhook, webhook_key)},
            "delivery",
            "registry",
        ),
        "deliveries": (
            topics.deliveries,
            "What the delivery service is asked to deliver.",
            {
                "DeliveryRequested": _model(messages.DeliveryRequested, webhook_key),
                "RedeliverRequested": _model(messages.RedeliverRequested, webhook_key),
                "RecoverRequested": _model(messages.RecoverRequested, webhook_key),
            },
            "fanout, registry",
            "delivery",
        ),
        "workflowRuns": (
            topics.workflow_runs,
            "What the workflow runner is asked to run.",
            {"WorkflowRunRequested": _model(messages.WorkflowRunRequested, workflow_key)},
            "fanout",
            "workflow_runner",
        ),
        "roomState": (
            topics.room_state,
            "Compacted: a room's KV entries and file metadata.",
            _room_state_messages(),
            "room services",
            "workflow_runner",
        ),
    }
    return channels | _dead_letter_channels(topics)


def _dead_letter_channels(topics: Topics) -> dict[str, tuple[str, str, dict[str, Any], str, str]]:
    return {
        cid: (
            address,
            f"Dead letters of the {source} topic.",
            {"DeadLetter": _dead_letter()},
            writer,
            "operators",
        )
        for cid, address, source, writer in (
            ("eventsDlq", topics.events_dlq, "events", "fanout"),
            ("deliveriesDlq", topics.deliveries_dlq, "deliveries", "delivery"),
            ("workflowRunsDlq", topics.workflow_runs_dlq, "workflow-runs", "workflow_runner"),
        )
    }


def _schemas() -> dict[str, Any]:
    models = {spec.payload_model for spec in events.CATALOG.values()}
    models |= {
        messages.WebhookRecord,
        messages.WorkflowRecord,
        messages.DisableWebhook,
        messages.DeliveryRequested,
        messages.RedeliverRequested,
        messages.RecoverRequested,
        messages.WorkflowRunRequested,
    }
    ordered = sorted(models, key=lambda m: m.__name__)
    _, top = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF)
    traceparent = {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "description": "Optional, W3C Trace Context: the span this record continues. On an "
        "event, the producer's (continued, but it cannot turn sampling on; a malformed one "
        "starts a new trace); on a delivery or workflow run request, fanout's span of its "
        "event, set while tracing is on (shared/tracing.py).",
    }
    headers = {
        "type": "object",
        "properties": {"content-type": {"const": "application/json"}, "traceparent": traceparent},
        "additionalProperties": True,
        "description": "`content-type: application/json` on every record that has a value; "
        "`traceparent` on events, delivery and workflow run requests that are traced.",
    }
    return dict(sorted({**top.get("$defs", {}), "JsonHeaders": headers}.items()))


def build(topics: Topics | None = None) -> dict[str, Any]:
    """The document, from the models as they are now (the default namespace's topic names)."""
    topics = topics or Topics()
    channels, operations = {}, {}
    for cid, (address, text, msgs, writers, readers) in _channels(topics).items():
        configs = topics.all()[address]
        binding: dict[str, Any] = {"topic": address, "bindingVersion": "0.5.0"}
        if configs.get("cleanup.policy"):
            binding["topicConfiguration"] = {"cleanup.policy": [configs["cleanup.policy"]]}
        channels[cid] = {
            "address": address,
            "description": f"{text} Written by {writers}; read by {readers}.",
            "messages": msgs,
            "bindings": {"kafka": binding},
        }
        refs = [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in msgs]
        for action, who in (("send", writers), ("receive", readers)):
            operations[f"{action}_{cid}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "summary": f"{who.capitalize()} {action}.",
                "messages": refs,
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "roomhooks topics",
            "version": "1.0.0",
            "description": "The Kafka topics of roomhooks: keys, headers and values. Topic "
            "names are shown for the default namespace `roomhooks` (a setting). Values are "
            "compact UTF-8 JSON; delivery is at-least-once, so every consumer is idempotent.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _schemas()},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file differs")
    parser.add_argument("--path", type=Path, default=DOCUMENT)
    args = parser.parse_args(argv)
    text = render(build())
    if not args.check:
        args.path.write_text(text, encoding="utf-8")
        return 0
    if args.path.is_file() and args.path.read_text(encoding="utf-8") == text:
        return 0
    print(
        f"{args.path} differs from the message models: run `python -m devtool.asyncapi`",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
