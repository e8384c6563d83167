"""The sandbox's JSON-lines protocol and the caps it applies to what a host sends back."""

from __future__ import annotations

import base64
import json

import pytest

from services.workflow_runner.sandbox import FetchResponse, SandboxSettings
from services.workflow_runner.sandbox.diagnosis import OutputTail, death_reason
from services.workflow_runner.sandbox.protocol import (
    MessageTooLarge,
    ProtocolError,
    cap_logs,
    cpu_message,
    decode,
    decode_result,
    encode,
    fetch_request_from_wire,
    fetch_response_to_wire,
    init_message,
    parse_call,
    parse_cpu_question,
    parse_done,
    parse_ready,
    reply_error,
    reply_ok,
    run_message,
    truncate_utf8,
)

SETTINGS = SandboxSettings(max_log_entries=3, max_log_bytes=64, max_result_bytes=32)


def test_a_message_is_one_compact_line_of_utf8_json() -> None:
    data = encode({"t": "run", "code": "a\nb", "event": {"name": "Raum ü"}}, max_bytes=1000)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"t": "run", "code": "a\nb", "event": {"name": "Raum ü"}}
    assert b" " not in data.replace(b"Raum \xc3\xbc", b"")


def test_encoding_refuses_lines_over_the_limit_and_values_that_are_not_json() -> None:
    with pytest.raises(MessageTooLarge):
        encode({"t": "x", "v": "a" * 100}, max_bytes=50)
    with pytest.raises(ValueError):
        encode({"t": "x", "v": float("nan")}, max_bytes=1000)
    with pytest.raises(TypeError):
        encode({"t": "x", "v": object()}, max_bytes=1000)


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'{"no_t": 1}\n', b"\xff\n"])
def test_a_line_that_is_not_a_message_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(line)


def test_python_messages_carry_what_the_host_needs() -> None:
    init = init_message(SandboxSettings(), "prelude source")
    assert init["limits"] == {
        "max_log_entries": 200,
        "max_log_bytes": 65536,
        "max_result_bytes": 65536,
        "max_calls": 1000,
        "max_fetches": 50,
        "max_fetch_body_bytes": 1048576,
    }
    assert init["max_workers"] == 64 and init["prelude"] == "prelude source"
    run = run_message(
        run_id="r", workflow_id="w", version=3, language="ts", code="c", event={}, timeout_ms=5000
    )
    assert run == {
        "t": "run",
        "run": "r",
        "workflow": "w",
        "version": 3,
        "lang": "ts",
        "code": "c",
        "event": {},
        "timeout_ms": 5000,
    }
    assert reply_ok("r", 7, {"a": 1}) == {
        "t": "reply",
        "run": "r",
        "call": 7,
        "ok": True,
        "value": {"a": 1},
    }
    assert reply_error("r", 7, "no") == {
        "t": "reply",
        "run": "r",
        "call": 7,
        "ok": False,
        "error": "no",
    }


def test_ready_names_the_deno_version() -> None:
    assert parse_ready({"t": "ready", "deno": "2.9.8", "pid": 1}) == "2.9.8"
    with pytest.raises(ProtocolError):
        parse_ready({"t": "done"})


@pytest.mark.parametrize(
    "message",
    [
        {"t": "call", "run": "r", "call": 1, "method": "store.put", "args": []},
        {"t": "call", "run": "r", "call": "1", "method": "room.get", "args": []},
        {"t": "call", "run": "r", "call": True, "method": "room.get", "args": []},
        {"t": "call", "run": 5, "call": 1, "method": "room.get", "args": []},
        {"t": "call", "run": "r", "call": 1, "method": "room.get", "args": {}},
    ],
)
def test_calls_of_unknown_methods_or_shapes_are_protocol_errors(message: dict) -> None:
    with pytest.raises(ProtocolError):
        parse_call(message)


def test_a_cpu_question_names_worker_threads_each_once_and_gets_their_times() -> None:
    question = {"t": "cpu", "threads": ["worker-3", "worker-12", "worker-3"]}
    assert parse_cpu_question(question, max_threads=4) == ["worker-3", "worker-12"]
    assert cpu_message({"worker-3": 1500, "worker-12": None}) == {
        "t": "cpu",
        "ns": {"worker-3": 1500, "worker-12": None},
    }


@pytest.mark.parametrize(
    "threads",
    [None, "worker-1", ["deno"], ["worker-1", "tokio-runtime-w"], [7], ["worker-1"] * 5],
)
def test_a_cpu_question_about_other_threads_or_too_many_is_a_protocol_error(threads) -> None:
    with pytest.raises(ProtocolError):
        parse_cpu_question({"t": "cpu", "threads": threads}, max_threads=4)


def test_a_call_names_its_run_method_and_arguments() -> None:
    call = parse_call(
        {"t": "call", "run": "r", "call": 4, "method": "store.get", "args": ["settings", "u1"]}
    )
    assert (call.run_id, call.call_id, call.method, call.args) == (
        "r",
        4,
        "store.get",
        ["settings", "u1"],
    )
    assert parse_call({"t": "call", "run": "r", "call": 5, "method": "fetch", "args": [{}]})


def done(**fields: object) -> dict:
    return {
        "t": "done",
        "run": "r",
        "status": "success",
        "result": None,
        "error": None,
        "logs": [],
        "dropped": 0,
        "cold": True,
        "workers": 2,
    } | fields


def test_done_decodes_the_result_and_keeps_the_cold_flag() -> None:
    report = parse_done(done(result='{"logged":true}'), SETTINGS)
    assert (report.status, report.result, report.error, report.cold, report.workers) == (
        "success",
        {"logged": True},
        None,
        True,
        2,
    )
    assert parse_done(done(result=None), SETTINGS).result is None


def test_a_result_over_the_cap_turns_success_into_error() -> None:
    report = parse_done(done(result=json.dumps("x" * 100)), SETTINGS)
    assert report.status == "error" and report.result is None
    assert report.error is not None and "result too large" in report.error["message"]


@pytest.mark.parametrize(
    ("text", "message"),
    [(5, "not JSON text"), ("{nope", "not valid JSON"), ('"' + "é" * 20 + '"', "too large")],
)
def test_results_that_are_not_json_text_or_too_large_are_errors(text: object, message: str):
    value, error = decode_result(text, max_bytes=32)
    assert value is None and error is not None and message in error["message"]


def test_errors_are_shaped_and_clipped() -> None:
    report = parse_done(done(status="error", error={"message": "m" * 10_000, "stack": 5}), SETTINGS)
    assert report.error is not None
    assert len(report.error["message"]) < 4200 and report.error["stack"] is None
    bare = parse_done(done(status="timeout", error="nonsense"), SETTINGS)
    assert bare.error == {"message": "the workflow failed", "stack": None}


@pytest.mark.parametrize(
    "message", [done(status="maybe"), done(run=None), {"t": "done", "status": "success"}]
)
def test_done_without_run_or_known_status_is_a_protocol_error(message: dict) -> None:
    with pytest.raises(ProtocolError):
        parse_done(message, SETTINGS)


def entry(message: str, level: str = "log") -> dict:
    return {"level": level, "message": message}


def test_logs_within_the_caps_pass_unchanged() -> None:
    logs = [entry("a"), entry("b", "warn")]
    assert cap_logs(logs, max_entries=3, max_bytes=40) == logs


def test_logs_over_the_entry_cap_end_with_a_note_of_what_was_dropped() -> None:
    capped = cap_logs([entry(str(n)) for n in range(10)], max_entries=3, max_bytes=40)
    assert [e["message"] for e in capped[:3]] == ["0", "1", "2"]
    assert capped[3]["level"] == "warn"
    assert capped[3]["message"].startswith("7 more log entries dropped")


def test_the_entry_that_crosses_the_byte_cap_is_truncated_and_ends_the_log() -> None:
    logs = [entry("a" * 30), entry("b" * 100), entry("c")]
    capped = cap_logs(logs, max_entries=9, max_bytes=80)
    assert capped[0]["message"] == "a" * 30
    assert capped[1]["message"].startswith("bbb") and capped[1]["message"].endswith("[truncated]")
    assert sum(len(e["message"].encode()) for e in capped[:2]) <= 80
    assert capped[2]["message"].startswith("1 more log entries dropped")


def test_an_entry_with_too_few_bytes_left_is_dropped_not_truncated() -> None:
    capped = cap_logs([entry("a" * 30), entry("b" * 30), entry("c")], max_entries=9, max_bytes=40)
    assert capped[0]["message"] == "a" * 30
    assert capped[1]["message"].startswith("2 more log entries dropped")


def test_upstream_drops_and_malformed_entries_are_counted() -> None:
    capped = cap_logs(
        [entry("ok"), {"level": "shout", "message": "x"}, "junk"],
        max_entries=9,
        max_bytes=40,
        dropped=5,
    )
    assert capped[0] == entry("ok")
    assert capped[1]["message"].startswith("7 more log entries dropped")


def test_truncating_never_splits_a_character() -> None:
    assert truncate_utf8("ééé", 3) == "é"
    assert truncate_utf8("abc", 0) == ""


def test_fetch_requests_come_with_base64_bodies_and_header_pairs() -> None:
    wire = {
        "url": "https://hooks.slack.com/x",
        "method": "post",
        "headers": [["content-type", "application/json"], ["x-a", "1"], ["x-a", "2"]],
        "body": base64.b64encode(b'{"text":"hi"}').decode(),
    }
    request = fetch_request_from_wire([wire], max_body_bytes=100)
    assert request.method == "POST" and request.url == "https://hooks.slack.com/x"
    assert request.headers == {"content-type": "application/json", "x-a": "1, 2"}
    assert request.body == b'{"text":"hi"}'


@pytest.mark.parametrize(
    "wire",
    [
        {"url": "", "method": "GET", "headers": [], "body": None},
        {"url": "https://x", "method": "GET" * 10, "headers": [], "body": None},
        {"url": "https://x", "method": "GET", "headers": [["a"]], "body": None},
        {"url": "https://x", "method": "GET", "headers": [], "body": "!!!"},
        {
            "url": "https://x",
            "method": "GET",
            "headers": [],
            "body": base64.b64encode(b"x" * 101).decode(),
        },
    ],
)
def test_malformed_or_oversized_fetch_requests_are_refused(wire: dict) -> None:
    with pytest.raises(ValueError, match="fetch"):
        fetch_request_from_wire([wire], max_body_bytes=100)


def test_fetch_responses_go_back_as_status_pairs_and_base64() -> None:
    wire = fetch_response_to_wire(FetchResponse(201, {"a": "b"}, b"ok"))
    assert wire == {"status": 201, "headers": [["a", "b"]], "body": "b2s="}
    assert fetch_response_to_wire(FetchResponse(204, {}, b""))["body"] is None


@pytest.mark.parametrize(
    ("returncode", "stderr", "oom_kills", "reason"),
    [
        (
            -5,
            b"\n#\n# Fatal JavaScript out of memory: Reached heap limit\n#\n",
            0,
            "out of memory: over the JavaScript heap limit of 128 MB",
        ),
        (-9, b"", 1, "out of memory: over the memory limit of 256 MB"),
        (-9, b"", 0, "killed by SIGKILL"),
        (70, b"sandbox host: the socket to Python is gone", 0, "exit code 70"),
        (-99, b"", 0, "exit code -99"),
    ],
)
def test_a_dead_host_is_explained_by_its_exit_and_what_it_left(
    returncode: int, stderr: bytes, oom_kills: int, reason: str
) -> None:
    assert (
        death_reason(returncode, stderr=stderr, oom_kills=oom_kills, heap_mb=128, memory_max_mb=256)
        == reason
    )


def test_an_output_tail_keeps_the_last_bytes_and_counts_them_all() -> None:
    tail = OutputTail(limit=4)
    tail.add(b"abc")
    tail.add(b"defg")
    assert (tail.data, tail.total) == (b"defg", 7)


def test_a_log_entry_with_a_lone_surrogate_is_kept_with_it_escaped() -> None:
    """JSON.stringify writes a lone surrogate as an escape: Python reads it back as a str that
    has no UTF-8 encoding, which used to make sizing the log raise."""
    capped = cap_logs([entry("a\ud800b"), entry("x\x00y")], max_entries=9, max_bytes=40)
    assert capped == [entry("a\\ud800b"), entry("x\\u0000y")]


def test_a_result_nested_too_deep_to_read_is_an_error_not_an_exception() -> None:
    value, error = decode_result("[" * 100_000 + "]" * 100_000, max_bytes=1_000_000)
    assert value is None and error is not None and "nested too deep" in error["message"]
