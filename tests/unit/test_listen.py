"""`roomhooks listen` verifies both schemes on what the delivery service sends, answers what it
was told to, and prints the time and the status it answered."""

from __future__ import annotations

import io
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devtool.cli_support import CliError, Parser
from devtool.listen import (
    RUNNER_OPTIONS,
    Answer,
    ListenConfig,
    add_listen_command,
    check_delivery,
    config_from,
    iso_time,
    listen_app,
    refusal,
    render,
    status_answer,
)
from services.delivery.dispatcher import build_headers
from shared.signing import PreviousSecret, new_secret

SECRET = new_secret()
BODY = b'{"id":"e1","event":"participant.joined","data":{"roomId":"r1"}}'
NOW = 1_780_000_000


def headers(secret: str = SECRET, body: bytes = BODY, **extra: object) -> dict[str, str]:
    return build_headers(
        secret=secret,
        body=body,
        delivery_id="d1",
        event="participant.joined",
        attempt=2,
        timestamp=NOW,
        user_agent="roomhooks/test",
        **extra,  # type: ignore[arg-type]
    )


class Fixed:
    def __init__(self, *secrets: str) -> None:
        self.secrets = secrets

    def live(self) -> tuple[str, ...]:
        return self.secrets


def parse(*argv: str):
    parser = Parser(prog="roomhooks")
    add_listen_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["listen", *argv])


# --- verifying --------------------------------------------------------------------------------


def test_a_genuine_delivery_verifies_with_both_schemes():
    verdict = check_delivery([SECRET], BODY, headers(), now=NOW)
    assert verdict.verified and verdict.attempt == "2" and verdict.delivery == "d1"


def test_a_tampered_body_fails_both_schemes():
    verdict = check_delivery([SECRET], BODY + b" ", headers(), now=NOW)
    assert not verdict.hex_valid and not verdict.standard_valid and not verdict.verified


def test_another_secret_fails():
    assert not check_delivery([new_secret()], BODY, headers(), now=NOW).verified


def test_no_secret_verifies_nothing():
    assert not check_delivery([], BODY, headers(), now=NOW).verified


def test_any_of_several_secrets_verifies_a_delivery():
    others = [new_secret(), new_secret()]
    assert check_delivery([*others, SECRET], BODY, headers(), now=NOW).verified


def test_a_standard_webhooks_secret_verifies_too():
    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert check_delivery([whsec], BODY, headers(secret=whsec), now=NOW).verified


def test_two_secrets_each_verifying_one_scheme_do_not_make_a_delivery_verified():
    one, other = new_secret(), new_secret()
    mixed = headers(secret=one) | {
        "X-Webhook-Signature": headers(secret=other)["X-Webhook-Signature"]
    }
    verdict = check_delivery([one, other], BODY, mixed, now=NOW)
    assert verdict.hex_valid and verdict.standard_valid and not verdict.verified


def test_during_a_rotation_the_new_secret_verifies_by_the_next_header_and_the_old_by_the_first():
    old, new = new_secret(), new_secret()
    sent = headers(secret=new, previous=PreviousSecret(old, NOW + 60))
    for secret in (old, new):
        assert check_delivery([secret], BODY, sent, now=NOW).verified
    assert not check_delivery([new_secret()], BODY, sent, now=NOW).verified


# --- answering and printing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"status": 200, "reason": "OK"}),
        (500, {"status": 500, "reason": "Internal Server Error"}),
        (410, {"status": 410, "reason": "Gone"}),
        (599, {"status": 599, "reason": ""}),
    ],
)
def test_the_status_answer_carries_a_body_that_says_the_status(status, body):
    answer = status_answer(status)
    assert answer.status == status and json.loads(answer.body) == body


def test_a_no_content_answer_has_no_body():
    assert status_answer(204).body == b""


def test_a_refusal_is_401_and_says_how_many_secrets_were_tried():
    answer = refusal(2, forwarding=True)
    assert answer.status == 401 and json.loads(answer.body)["error"] == "invalid signature"
    assert answer.note == "no live secret verifies both signatures (2 live); not forwarded"


def test_the_head_line_starts_with_the_time_and_the_status_answered():
    verdict = check_delivery([SECRET], BODY, headers(), now=NOW)
    printed = render("2026-05-29T10:06:00.123Z", status_answer(503), verdict, BODY)
    head, *rest = printed.splitlines()
    assert head == (
        "2026-05-29T10:06:00.123Z 503 participant.joined delivery=d1 attempt=2"
        " X-Webhook-Signature=valid webhook-signature=valid"
    )
    assert json.loads("\n".join(rest)) == json.loads(BODY)


def test_a_note_is_printed_indented_between_the_head_and_the_body():
    verdict = check_delivery([SECRET], BODY, headers(), now=NOW)
    printed = render("t", Answer(502, b"", note="forward to x: unreachable"), verdict, BODY)
    assert printed.splitlines()[1] == "  forward to x: unreachable"


def test_a_body_that_is_not_json_is_printed_as_text():
    verdict = check_delivery([SECRET], b"plain \xff", {}, now=NOW)
    printed = render("t", refusal(1, forwarding=False), verdict, b"plain \xff")
    assert (
        printed.splitlines()[0]
        == "t 401 - delivery=- attempt=- X-Webhook-Signature=INVALID webhook-signature=INVALID"
    )
    assert printed.splitlines()[-1] == "plain \ufffd"


def test_the_time_is_iso_8601_utc_with_milliseconds():
    assert iso_time(1_780_000_000.25) == "2026-05-28T20:26:40.250Z"


# --- the server, for real ---------------------------------------------------------------------


async def test_listen_answers_the_status_to_signed_and_401_to_unsigned_requests():
    out = io.StringIO()
    app = listen_app(Fixed(SECRET), ListenConfig(status=500), out=out, clock=lambda: NOW)
    async with TestClient(TestServer(app, **RUNNER_OPTIONS)) as client:
        good = await client.post("/hook", data=BODY, headers=headers())
        good_body = await good.json()
        bad = await client.post("/hook", data=BODY, headers=headers(secret=new_secret()))
    assert (good.status, good_body) == (500, {"status": 500, "reason": "Internal Server Error"})
    assert bad.status == 401
    lines = out.getvalue().splitlines()
    at = iso_time(NOW)
    assert lines[0] == (
        f"{at} 500 participant.joined delivery=d1 attempt=2"
        " X-Webhook-Signature=valid webhook-signature=valid"
    )
    assert (
        f"{at} 401 participant.joined delivery=d1 attempt=2 X-Webhook-Signature=INVALID"
        in "\n".join(lines)
    )
    assert '    "roomId": "r1"' in lines


async def test_listen_verifies_with_the_secrets_live_at_each_request():
    source = Fixed()
    out = io.StringIO()
    app = listen_app(source, ListenConfig(), out=out, clock=lambda: NOW)
    async with TestClient(TestServer(app, **RUNNER_OPTIONS)) as client:
        before = await client.post("/", data=BODY, headers=headers())
        source.secrets = (SECRET,)
        after = await client.post("/", data=BODY, headers=headers())
    assert (before.status, after.status) == (401, 200)
    assert "(0 live)" in out.getvalue()


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--status", "100"], "--status: must be a final HTTP status, from 200 to 599"),
        (["--status", "600"], "--status: must be a final HTTP status, from 200 to 599"),
        (["--status", "ok"], "--status: must be a number, not 'ok'"),
        (["--forward-to", "ftp://x/"], "--forward-to: must be an http:// or https:// URL"),
        (["--forward-to", "localhost:3000"], "--forward-to: must be an http:// or https:// URL"),
        (["--forward-to", "http:///hook"], "--forward-to: must name a host"),
        (["--forward-to", "http://h:99999/"], "--forward-to: has an invalid port"),
        (["--forward-to", "http://h/", "--status", "500"], "not allowed with argument"),
        (
            ["--forward-to", "http://h/", "--forward-timeout", "0"],
            "--forward-timeout: must be more",
        ),
        (["--secret", "not-a-secret"], "--secret: must be 64 lowercase hex characters"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_option(argv, message):
    with pytest.raises(CliError) as raised:
        parse("--port", "9000", *argv)
    assert raised.value.code == 2 and message in raised.value.message


def test_a_bad_secret_is_not_echoed_in_the_error():
    with pytest.raises(CliError) as raised:
        parse("--port", "9000", "--secret", "s3cr3t-value")
    assert "s3cr3t-value" not in raised.value.message


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "--port: must be from 1 to 65535"),
        (["--port", "9000", "--forward-timeout", "3"], "--forward-timeout: only with --forward-to"),
        (["--port", "9000", "--forward-to", "http://localhost:9000/"], "listen's own address"),
    ],
)
def test_options_that_cannot_work_together_are_refused(argv, message):
    with pytest.raises(CliError) as raised:
        config_from(parse(*argv))
    assert message in raised.value.message


def test_the_options_make_the_config():
    assert config_from(parse("--port", "9000")) == ListenConfig(status=200)
    forwarding = config_from(
        parse(
            "--port", "9000", "--forward-to", "http://127.0.0.1:3000/h", "--forward-timeout", "2.5"
        )
    )
    assert forwarding == ListenConfig(forward_to="http://127.0.0.1:3000/h", forward_timeout_s=2.5)
