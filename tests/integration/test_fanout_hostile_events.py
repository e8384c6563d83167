"""Hostile events on the real broker: each bad one is set aside once with its reason, and the
good ones around it are routed; what reaches the deliveries topic is storable and what
JavaScript (a real Deno) re-serializes to the same bytes."""

from __future__ import annotations

import json
import subprocess
import uuid

import deno
import pytest

from shared.events import parse_event, render_payload
from shared.failures import unstorable_at
from shared.messages import DeliveryRequested
from tests.integration.test_fanout_pipeline import (
    COLLAB,
    ROOM_1,
    hook,
    publish,
    publish_event,
    put_registry,
    room_event,
)
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

DENO_ROUNDTRIP = (
    "const lines = new TextDecoder().decode(await new Response(Deno.stdin.readable)"
    ".arrayBuffer()).split('\\n').filter((l) => l);"
    "console.log(lines.map((l) => JSON.stringify(JSON.parse(l))).join('\\n'));"
)


def with_fields(event: dict, **fields: object) -> bytes:
    """The event as a producer sends it: NUL and lone surrogates written as JSON escapes."""
    return json.dumps({**event, **fields}).encode()


def deno_roundtrip(bodies: list[bytes]) -> list[bytes]:
    """`JSON.stringify(JSON.parse(body))` for each body, in Deno (the workflow runtime)."""
    done = subprocess.run(
        [deno.find_deno_bin(), "eval", "--quiet", DENO_ROUNDTRIP],
        input=b"\n".join(bodies) + b"\n",
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.rstrip(b"\n").split(b"\n")


async def test_hostile_events_go_to_the_dlq_once_with_their_reason_and_the_rest_are_routed(
    start_fanout, producer, kafka_settings, topics
):
    org = str(uuid.uuid4())
    webhook = hook(org, COLLAB)
    await put_registry(producer, topics, webhook)
    fanout = await start_fanout()

    def joined() -> dict:
        return room_event("participant.joined", org, ROOM_1)

    closed = room_event("session.closed", org, ROOM_1)
    bad: list[tuple[bytes, str]] = [
        (with_fields(joined(), id="ev\u0000x"), "id: string contains NUL (U+0000)"),
        (with_fields(joined(), organization_id=org + "\u0000"), "organization_id: string"),
        (with_fields(joined(), id="ev\ud800"), "id: string contains a lone UTF-16 surrogate"),
        (with_fields(joined()).replace(b'"id": "', b'"id": "\xff', 1), "id: not valid UTF-8"),
        (with_fields(closed, users=5), "users: input should be a valid list"),
        (b'{"id": "x", "room": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested deeper than 64"),
        (b"[" * 100_000, "nested deeper than 64"),
    ]
    escaped = joined()
    escaped["user"] = {**escaped["user"], "name": "Ada\u0000\ud800"}
    good: list[dict] = []
    where_bad: dict[tuple[int, int], tuple[bytes, str]] = {}
    for value, reason in bad:
        good.append(joined())
        await publish_event(producer, topics, good[-1])
        metadata = await publish(producer, topics, value, ROOM_1)
        where_bad[(metadata.partition, metadata.offset)] = (value, reason)
    good.append(escaped)
    await publish(producer, topics, with_fields(escaped), ROOM_1)
    good.append(joined())
    await publish_event(producer, topics, good[-1])

    dead = await read_topic(kafka_settings, topics.events_dlq, at_least=len(bad))
    assert len(dead) == len(bad)
    for record in dead:
        value, reason = where_bad.pop(
            (int(record.headers["rh-partition"]), int(record.headers["rh-offset"]))
        )
        assert record.value == value
        assert record.headers["rh-error"].decode().find(reason) >= 0, record.headers["rh-error"]

    records = await read_topic(kafka_settings, topics.deliveries, at_least=len(good))
    requests = [DeliveryRequested.model_validate_json(r.value) for r in records]
    assert sorted(r.event_id for r in requests) == sorted(e["id"] for e in good)
    bodies = {r.event_id: r.body for r in requests}
    assert json.loads(bodies[escaped["id"]])["user"]["name"] == "Ada\\u0000\\ud800"
    for event in good:
        assert bodies[event["id"]] == render_payload(parse_event(with_fields(event))).decode()
    assert all(unstorable_at(r.body) is None for r in requests)
    assert deno_roundtrip([r.body.encode() for r in requests]) == [
        r.body.encode() for r in requests
    ]

    def poison(kind: str) -> float | None:
        labels = {"service": "fanout", "kind": kind}
        return fanout.metrics.registry.get_sample_value("roomhooks_poison_inputs_total", labels)

    assert (poison("unstorable_text"), poison("too_deep"), poison("invalid_field")) == (4, 2, 1)
