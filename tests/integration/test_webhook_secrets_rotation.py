"""A secret rotated through the real pipeline (registry API, outbox, Kafka, fanout, delivery,
a real receiver): every attempt before, during and after the overlap verifies with the
official `standardwebhooks` package and with the CollabKit guide's Express handler extended
by the lines docs/webhooks.md gives, for a receiver that takes the new secret at any moment
of the overlap."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.integration import test_pipeline
from tests.integration.test_pipeline import Platform, collab_event
from tests.support.polling import eventually
from tests.support.receiver import Received

pytestmark = pytest.mark.integration

# The whole platform in one process, as test_pipeline.py runs it (the fixture `platform`).
platform = test_pipeline.platform

OVERLAP_S = 10  # longer than the registry record takes to reach delivery (a second or two)
PATH = "/rotating"

# The guide's Express check (`guide`), and the same check extended for a rotation exactly as
# docs/webhooks.md shows (`extended`): the secret's HMAC against either header. Each case is
# one received request, as Express hands it over: the body parsed, header names lower-cased.
EXPRESS_VERIFY = r"""
const { createHmac, timingSafeEqual } = require('crypto');

function guide(req, secret) {
  const signature = req.headers['x-webhook-signature'];
  const expected = createHmac('sha256', secret).update(JSON.stringify(req.body)).digest('hex');
  return timingSafeEqual(Buffer.from(signature), Buffer.from(expected));  // throws on lengths
}

function extended(req, secret) {
  const expected = createHmac('sha256', secret).update(JSON.stringify(req.body)).digest('hex');
  return ['x-webhook-signature', 'x-webhook-signature-next'].some((name) => {
    const signature = req.headers[name];
    return typeof signature === 'string' && signature.length === expected.length &&
      timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
  });
}

const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map(({ body, headers, secret }) => {
  const req = { body: JSON.parse(body), headers };
  return { guide: guide(req, secret), extended: extended(req, secret) };
})));
"""


def express(received: list[Received], secret: str) -> list[dict[str, bool]]:
    node = shutil.which("node")
    assert node, "node is needed to check signatures as the guide's Express receiver does"
    cases = [
        {
            "body": r.body.decode(),
            "headers": {k.lower(): v for k, v in r.headers.items()},
            "secret": secret,
        }
        for r in received
    ]
    done = subprocess.run(
        [node, "-e", EXPRESS_VERIFY],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(done.stdout)


def standard_verifies(secret: str, got: Received) -> bool:
    try:
        StandardWebhook(secret).verify(got.body, got.headers)
    except WebhookVerificationError:
        return False
    return True


async def deliver_one(platform: Platform, account_id: str) -> Received:
    """Publish one event and wait for its request."""
    sent = collab_event("participant.joined", account_id)
    await platform.publish(sent)

    async def arrived() -> Received | None:
        found = [r for r in platform.receiver.received[PATH] if sent["id"] in r.body.decode()]
        return found[0] if found else None

    return await eventually(arrived, timeout_s=20)


async def test_no_attempt_fails_before_during_or_after_a_rotations_overlap(platform, registry):
    alice = registry.alice
    webhook = await platform.webhook(alice, PATH, ["participant.joined"])
    old = webhook["secret"]
    before = [await deliver_one(platform, alice.id)]

    url = registry.webhooks_url(alice, webhook["id"]) + "/rotate-secret"
    answer = await registry.http.post(url, json={"overlapSeconds": OVERLAP_S}, headers=alice.auth())
    assert answer.status == 200, await answer.text()
    rotated = (await answer.json())["data"]["webhook"]
    new, ends = rotated["secret"], datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert new != old and rotated["id"] == webhook["id"]
    shown = await registry.http.get(
        registry.webhooks_url(alice, webhook["id"]), headers=alice.auth()
    )
    assert new not in await shown.text() and old not in await shown.text()

    # Until delivery reads the registry's record it signs as before: a receiver takes the
    # new secret once a request carries X-Webhook-Signature-Next.
    during: list[Received] = []
    while not during:
        got = await deliver_one(platform, alice.id)
        (during if "X-Webhook-Signature-Next" in got.headers else before).append(got)
    during += [await deliver_one(platform, alice.id) for _ in range(3)]

    async def overlap_over() -> bool:
        return datetime.now(UTC) > ends

    await eventually(overlap_over, timeout_s=OVERLAP_S + 5, interval_s=0.2)
    # No registry record since the rotation: delivery ends the overlap by the clock alone.
    after = [await deliver_one(platform, alice.id) for _ in range(3)]

    ends_at = int(ends.timestamp())
    assert all(int(r.headers["webhook-timestamp"]) < ends_at for r in before + during)
    assert all(int(r.headers["webhook-timestamp"]) >= ends_at for r in after)
    assert not any("X-Webhook-Signature-Next" in r.headers for r in before + after)
    # The official library: one `v1,` entry per live secret, either verifies.
    assert all(standard_verifies(old, r) for r in before + during)
    assert all(standard_verifies(new, r) for r in during + after)
    assert not any(standard_verifies(old, r) for r in after)
    assert all(len(r.headers["webhook-signature"].split(" ")) == 2 for r in during)
    # The guide's receiver, unchanged, keeps working on the old secret through the overlap;
    # extended, it accepts the new secret from the first request that carries it, and after.
    with_old = {"guide": True, "extended": True}
    assert express(before + during, old) == [with_old] * len(before + during)
    assert express(during, new) == [{"guide": False, "extended": True}] * len(during)
    assert express(after, new) == [{"guide": True, "extended": True}] * len(after)
    assert express(after, old) == [{"guide": False, "extended": False}] * len(after)
