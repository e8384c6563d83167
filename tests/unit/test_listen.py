"""`roomhooks listen` verifies both schemes on what the delivery service sends."""

from __future__ import annotations

import io

from aiohttp.test_utils import TestClient, TestServer

from devtool.listen import check_delivery, listen_app
from services.delivery.dispatcher import build_headers
from shared.signing import PreviousSecret, new_secret

SECRET = new_secret()
BODY = b'{"id":"e1","event":"participant.joined","data":{"roomId":"r1"}}'
NOW = 1_780_000_000


def headers(secret: str = SECRET, body: bytes = BODY) -> dict[str, str]:
    return build_headers(
        secret=secret,
        body=body,
        delivery_id="d1",
        event="participant.joined",
        attempt=2,
        timestamp=NOW,
        user_agent="roomhooks/test",
    )


def test_a_genuine_delivery_verifies_with_both_schemes():
    report = check_delivery(SECRET, BODY, headers(), now=NOW)
    assert report["verified"] and report["attempt"] == "2"


def test_a_tampered_body_fails_both_schemes():
    report = check_delivery(SECRET, BODY + b" ", headers(), now=NOW)
    assert report["x_webhook_signature"] == "INVALID"
    assert report["standard_webhooks_signature"] == "INVALID"


def test_another_secret_fails():
    assert not check_delivery(new_secret(), BODY, headers(), now=NOW)["verified"]


async def test_listen_answers_200_to_signed_and_401_to_unsigned_requests():
    out = io.StringIO()
    app = listen_app(SECRET, out=out, status=200, clock=lambda: NOW)
    async with TestClient(TestServer(app)) as client:
        good = await client.post("/hook", data=BODY, headers=headers())
        bad = await client.post("/hook", data=BODY, headers=headers(secret=new_secret()))
    assert good.status == 200 and bad.status == 401
    printed = out.getvalue()
    assert "participant.joined delivery=d1 attempt=2 X-Webhook-Signature=valid" in printed
    assert "INVALID" in printed and '"roomId": "r1"' in printed


def test_during_a_rotation_the_new_secret_verifies_by_the_next_header_and_the_old_by_the_first():
    old, new = new_secret(), new_secret()
    sent = build_headers(
        secret=new,
        body=BODY,
        delivery_id="d1",
        event="participant.joined",
        attempt=1,
        timestamp=NOW,
        user_agent="roomhooks/test",
        previous=PreviousSecret(old, NOW + 60),
    )
    for secret in (old, new):
        assert check_delivery(secret, BODY, sent, now=NOW)["verified"]
    assert not check_delivery(new_secret(), BODY, sent, now=NOW)["verified"]
