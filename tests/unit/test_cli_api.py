"""The API commands' pure parts: where the key, URL and account come from, the one-line
refusal, table cells, and the request bodies built from flags."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from devtool.api_client import ApiTarget, RegistryApi, error_line, resolve_target
from devtool.cli_support import EXIT_UNAVAILABLE, EXIT_USAGE, CliError
from devtool.main import build_parser
from devtool.output import CELL_WIDTH, cell, page_note, record_table, rows_table
from devtool.webhooks_cli import webhook_body
from devtool.workflows_cli import workflow_body

ACCOUNT = uuid.UUID("9b7e7a4e-8a38-4c6e-9a0e-1f7f5e3f2a11")
DEFAULT_URL = "http://127.0.0.1:8080"


def target(environ: dict[str, str], saved: dict[str, str], account=None) -> ApiTarget:
    return resolve_target(
        account=account, environ=environ, saved=saved, default_url=lambda: DEFAULT_URL
    )


def test_the_environment_wins_over_run_env_for_url_key_and_account() -> None:
    other = uuid.uuid4()
    environ = {
        "ROOMHOOKS_API_URL": "http://env:1/",
        "ROOMHOOKS_API_KEY": "env-key",
        "ROOMHOOKS_ACCOUNT_ID": str(ACCOUNT),
    }
    saved = {
        "ROOMHOOKS_API_URL": "http://file:2",
        "ROOMHOOKS_API_KEY": "file-key",
        "ROOMHOOKS_ACCOUNT_ID": str(other),
    }
    assert target(environ, saved) == ApiTarget("http://env:1", "env-key", ACCOUNT)
    assert target({}, saved) == ApiTarget("http://file:2", "file-key", other)


def test_an_api_key_anywhere_wins_over_the_saved_owner_token() -> None:
    saved = {"ROOMHOOKS_OWNER_TOKEN": "owner", "ROOMHOOKS_API_KEY": "chosen"}
    assert target({"ROOMHOOKS_OWNER_TOKEN": "env-owner"}, saved).key == "chosen"
    assert target({}, {"ROOMHOOKS_OWNER_TOKEN": "owner"}).key == "owner"


def test_account_flag_wins_and_without_any_the_key_decides() -> None:
    chosen = uuid.uuid4()
    saved = {"ROOMHOOKS_OWNER_TOKEN": "k", "ROOMHOOKS_ACCOUNT_ID": str(ACCOUNT)}
    assert target({}, saved, account=chosen).account == chosen
    assert target({}, {"ROOMHOOKS_OWNER_TOKEN": "k"}) == ApiTarget(DEFAULT_URL, "k", None)


def test_no_key_is_bad_input_naming_the_setting() -> None:
    with pytest.raises(CliError) as raised:
        target({"ROOMHOOKS_API_URL": "http://x"}, {})
    assert raised.value.code == EXIT_USAGE
    assert "ROOMHOOKS_API_KEY" in raised.value.message


def test_a_saved_account_that_is_no_uuid_is_bad_input() -> None:
    with pytest.raises(CliError, match="ROOMHOOKS_ACCOUNT_ID: 'acme' is not a UUID"):
        target({"ROOMHOOKS_API_KEY": "k", "ROOMHOOKS_ACCOUNT_ID": "acme"}, {})


def test_the_target_never_shows_its_key() -> None:
    shown = repr(target({"ROOMHOOKS_API_KEY": "rh_live_very_secret"}, {}))
    assert "rh_live_very_secret" not in shown
    assert DEFAULT_URL in shown


def envelope(description: str, code: str, details: list[dict[str, str]]) -> dict:
    error = {"code": code, "message": description, "details": details}
    return {"type": "response", "success": False, "description": description, "error": error}


def test_a_validation_refusal_says_each_field_once() -> None:
    details = [
        {"field": "url", "message": "must be an absolute https:// URL"},
        {"field": "events", "message": "at least one event is required"},
    ]
    summary = "url: must be an absolute https:// URL; events: at least one event is required"
    assert error_line(400, envelope(summary, "validation_error", details)) == (
        f"400 validation_error: {summary}"
    )


def test_details_the_description_leaves_out_are_added() -> None:
    body = envelope("bad change", "validation_error", [{"field": "roomId", "message": "too long"}])
    assert error_line(400, body) == "400 validation_error: bad change; roomId: too long"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (None, "502: no description"),
        ("<html>", "502: no description"),
        ({"description": "line one\nline two"}, "502: line one line two"),
        ({"description": "x", "error": "not an object"}, "502: x"),
    ],
    ids=["no-body", "not-json-object", "multi-line", "odd-error"],
)
def test_any_answer_is_one_line(body: object, line: str) -> None:
    assert error_line(502, body) == line


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (True, "yes"),
        (["participant.joined", "participant.left"], "participant.joined, participant.left"),
        ([], "-"),
        ({"X-Team": "a"}, '{"X-Team":"a"}'),
        ("evil\x1b[31mred\nnext", "evil\\x1b[31mred\\nnext"),
    ],
    ids=["none", "bool", "names", "empty-list", "object", "control-characters"],
)
def test_a_cell_is_one_printable_line(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_list_tables_cut_long_cells_and_say_where_the_next_page_starts() -> None:
    rows = [{"id": "w1", "url": "https://example.com/" + "a" * 100}]
    table = rows_table(rows, [("ID", "id"), ("URL", "url")])
    header, line = table.splitlines()
    assert header.split() == ["ID", "URL"]
    assert line.split()[1].endswith("…") and len(line.split()[1]) == CELL_WIDTH
    assert page_note({"next_cursor": "abc"}) == "\nmore: --cursor abc"
    assert page_note({"next_cursor": None}) == ""


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_webhook_update_sends_only_the_fields_given() -> None:
    wid = str(uuid.uuid4())
    args = parse("webhooks", "update", wid, "--events", "participant.joined,session.started")
    assert webhook_body(args) == {"events": ["participant.joined", "session.started"]}
    args = parse("webhooks", "update", wid, "--no-room", "--header", "X-Team: design")
    assert webhook_body(args) == {"roomId": None, "headers": {"X-Team": "design"}}


def test_webhook_room_and_no_room_exclude_each_other() -> None:
    args = parse("webhooks", "update", str(uuid.uuid4()), "--room", "r1", "--no-room")
    with pytest.raises(CliError, match="exclude each other"):
        webhook_body(args)


def test_a_typescript_file_is_sent_as_ts_unless_the_language_is_given(tmp_path: Path) -> None:
    code = tmp_path / "flow.ts"
    code.write_text("export default async function() {}")
    base = ("workflows", "create", "--name", "n", "--events", "participant.joined")
    assert workflow_body(parse(*base, "--code-file", str(code)))["language"] == "ts"
    chosen = parse(*base, "--code-file", str(code), "--language", "js")
    assert workflow_body(chosen)["language"] == "js"
    js = tmp_path / "flow.js"
    js.write_text("export default async function() {}")
    assert "language" not in workflow_body(parse(*base, "--code-file", str(js)))


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["webhooks", "get", "not-a-uuid"], "WEBHOOK_ID: 'not-a-uuid' is not a UUID"),
        (["webhooks", "create", "--url", "u", "--events", "x.y"], "--events: unknown event"),
        (["webhooks", "create", "--url", "u", "--events", ","], "--events: at least one"),
        (["webhooks", "list", "--limit", "500"], "--limit: 500 is not between 1 and 100"),
        (["events", "list", "--since", "2026-05-29T10:00:00"], "--since: '2026-05-29T10:00:00'"),
        (["deliveries", "list", str(ACCOUNT), "--status", "lost"], "--status: invalid choice"),
        (["webhooks", "create", "--url", "u", "--events", "participant.joined",
          "--header", "NoColon"], "--header: 'NoColon' is not 'Name: value'"),
    ],
    ids=["id", "event", "no-event", "limit", "naive-time", "status", "header"],
)  # fmt: skip
def test_bad_flags_are_refused_before_any_request(argv: list[str], problem: str) -> None:
    with pytest.raises(CliError) as raised:
        parse(*argv)
    assert raised.value.code == EXIT_USAGE
    assert raised.value.message.startswith(problem)


def test_cells_that_look_like_numbers_are_shown_as_given() -> None:
    table = rows_table([{"name": "1e3", "room": "007"}], [("NAME", "name"), ("ROOM", "room")])
    assert table.splitlines()[1].split() == ["1e3", "007"]
    assert record_table({"name": "1e3"}).split() == ["name", "1e3"]


def test_a_refusal_quoting_hostile_input_stays_printable_and_bounded() -> None:
    body = envelope("name: \x1b[2J" + "x" * 5000, "validation_error", [])
    line = error_line(400, body)
    assert "\x1b" not in line and "\\x1b[2J" in line
    assert len(line) <= 2000 and line.endswith("…")


async def test_a_redirect_is_not_followed_so_the_key_goes_to_the_registry_only() -> None:
    reached: list[str | None] = []

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        reached.append(request.headers.get("Authorization"))
        return web.json_response({"data": {}})

    app = web.Application()
    app.router.add_get("/v1/me", moved)
    app.router.add_get("/elsewhere", elsewhere)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        api = RegistryApi(ApiTarget(str(server.make_url("")).rstrip("/"), "rh_key", None), session)
        with pytest.raises(CliError) as raised:
            await api.call("GET", "/v1/me")

    assert raised.value.code == EXIT_UNAVAILABLE
    assert "answered 302 without its JSON envelope" in raised.value.message
    assert reached == []
