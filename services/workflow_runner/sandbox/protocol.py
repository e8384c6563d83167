"""The JSON-lines protocol between Python and a sandbox host, and the caps on what comes back.

Python listens on a Unix socket of its own per host process (mode 0600, in a 0700 directory,
closed once the host has connected); the host connects to it. One UTF-8 JSON object per line,
each line at most `max_message_bytes` either way. Never stdin/stdout: a Worker can write fds
0-2 through node: built-ins.

Python -> host
  {"t": "init", "prelude": str, "max_workers": int, "idle_ttl_ms": int, "cpu_limit_ms": int,
   "max_message_bytes": int, "limits": {...}}
  {"t": "run", "run": id, "workflow": id, "version": int, "lang": "js" | "ts", "code": str,
   "event": {...}, "timeout_ms": int}
  {"t": "reply", "run": id, "call": int, "ok": true, "value": any}
  {"t": "reply", "run": id, "call": int, "ok": false, "error": str}
  {"t": "cpu", "ns": {thread: int | null}}   (the answer to the host's "cpu": each thread's CPU
   time, null where it cannot be read)
Host -> Python
  {"t": "ready", "deno": str, "pid": int}
  {"t": "call", "run": id, "call": int, "method": str, "args": [...]}   (fetch: method "fetch")
  {"t": "done", "run": id, "status": "success" | "error" | "timeout", "result": JSON text | null,
   "error": {"message", "stack"} | null, "logs": [...], "dropped": int, "cold": bool,
   "workers": int}
  {"t": "stuck", "workers": int, "cpu_ms": int, "blocked_ms": int, "workflow": id}   (a
   Worker's event loop stayed blocked past the CPU limit: it was terminated, its run (if any)
   ends `timeout`; its thread may spin on)
  {"t": "demote", "thread": str}   (a Worker stayed blocked a while: lower its thread's priority)
  {"t": "cpu", "threads": [str]}   (Workers whose event loop is blocked: how much CPU time
   has each thread used?)
  {"t": "blocked"}, {"t": "calm"}   (a Worker is blocked a while, none is any more: lower
   the host's scheduling group, raise it back)

Everything from a host is untrusted (it runs customer code): parse_* validate shapes and apply
the caps again, whatever the host and the Worker prelude already did. Pure: no I/O here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.workflow_runner.sandbox.models import (
    BINDING_METHODS,
    FetchRequest,
    FetchResponse,
    SandboxSettings,
)
from services.workflow_runner.sandbox.worker_threads import THREAD_NAME
from shared.failures import storable_text

LEVELS = frozenset({"log", "info", "warn", "error", "debug"})
STATUSES = frozenset({"success", "error", "timeout"})
MAX_ERROR_MESSAGE = 4096
MAX_ERROR_STACK = 16384
MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8192
TRUNCATED = " …[truncated]"
MIN_TRUNCATED = 32  # bytes left for an entry to be kept truncated rather than dropped


class ProtocolError(Exception):
    """A host broke the protocol; the host is killed and its runs fail."""


class MessageTooLarge(ValueError):
    """A message would exceed the line limit of the socket."""


def encode(message: dict[str, Any], *, max_bytes: int) -> bytes:
    """One line: compact JSON and a newline. Raises MessageTooLarge, or TypeError/ValueError for
    values that are not JSON."""
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = line.encode() + b"\n"
    if len(data) > max_bytes:
        raise MessageTooLarge(f"{len(data)} bytes, the limit is {max_bytes}")
    return data


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"a line is not JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("a line is not a message object")
    return message


# --- Python -> host


def init_message(settings: SandboxSettings, prelude: str) -> dict[str, Any]:
    return {
        "t": "init",
        "prelude": prelude,
        "max_workers": settings.max_workers_per_host,
        "idle_ttl_ms": int(settings.worker_idle_ttl_s * 1000),
        "cpu_limit_ms": settings.cpu_limit_ms,
        "max_message_bytes": settings.max_message_bytes,
        "limits": {
            "max_log_entries": settings.max_log_entries,
            "max_log_bytes": settings.max_log_bytes,
            "max_result_bytes": settings.max_result_bytes,
            "max_calls": settings.max_calls_per_run,
            "max_fetches": settings.max_fetches_per_run,
            "max_fetch_body_bytes": settings.max_fetch_body_bytes,
        },
    }


def run_message(
    *,
    run_id: str,
    workflow_id: str,
    version: int,
    language: str,
    code: str,
    event: dict[str, Any],
    timeout_ms: int,
) -> dict[str, Any]:
    return {
        "t": "run",
        "run": run_id,
        "workflow": workflow_id,
        "version": version,
        "lang": language,
        "code": code,
        "event": event,
        "timeout_ms": timeout_ms,
    }


def reply_ok(run_id: str, call_id: int, value: Any) -> dict[str, Any]:
    return {"t": "reply", "run": run_id, "call": call_id, "ok": True, "value": value}


def reply_error(run_id: str, call_id: int, error: str) -> dict[str, Any]:
    return {"t": "reply", "run": run_id, "call": call_id, "ok": False, "error": error}


def cpu_message(times: dict[str, int | None]) -> dict[str, Any]:
    return {"t": "cpu", "ns": times}


# --- Host -> Python


@dataclass(frozen=True)
class Call:
    run_id: str
    call_id: int
    method: str  # one of BINDING_METHODS, or "fetch"
    args: list[Any]


@dataclass(frozen=True)
class Done:
    run_id: str
    status: str
    result: Any | None
    error: dict[str, Any] | None
    logs: list[dict[str, str]]
    cold: bool
    workers: int


def parse_ready(message: dict[str, Any]) -> str:
    if message.get("t") != "ready" or not isinstance(message.get("deno"), str):
        raise ProtocolError("the host did not answer init with ready")
    return message["deno"]


def parse_call(message: dict[str, Any]) -> Call:
    run_id, call_id = message.get("run"), message.get("call")
    method, args = message.get("method"), message.get("args")
    if not isinstance(run_id, str) or not isinstance(call_id, int) or isinstance(call_id, bool):
        raise ProtocolError("call without a run id and call id")
    if method != "fetch" and method not in BINDING_METHODS:
        raise ProtocolError(f"call of an unknown method {method!r}")
    if not isinstance(args, list):
        raise ProtocolError("call arguments are not a list")
    return Call(run_id, call_id, method, args)


def parse_cpu_question(message: dict[str, Any], *, max_threads: int) -> list[str]:
    """The thread names a "cpu" message asks about: Worker threads only, at most
    `max_threads` (the host's Workers), each once."""
    threads = message.get("threads")
    if not isinstance(threads, list) or len(threads) > max_threads:
        raise ProtocolError("cpu without a list of at most one thread per Worker")
    if not all(isinstance(name, str) and THREAD_NAME.fullmatch(name) for name in threads):
        raise ProtocolError("cpu of a thread that is not a Worker's")
    return list(dict.fromkeys(threads))


def parse_done(message: dict[str, Any], settings: SandboxSettings) -> Done:
    run_id, status = message.get("run"), message.get("status")
    if not isinstance(run_id, str) or status not in STATUSES:
        raise ProtocolError("done without a run id and a known status")
    raw_logs = message.get("logs")
    dropped = message.get("dropped")
    logs = cap_logs(
        raw_logs if isinstance(raw_logs, list) else [],
        max_entries=settings.max_log_entries,
        max_bytes=settings.max_log_bytes,
        dropped=dropped if isinstance(dropped, int) and dropped > 0 else 0,
    )
    result, error = None, _error(message.get("error")) if status != "success" else None
    if status == "success":
        result, error = decode_result(message.get("result"), max_bytes=settings.max_result_bytes)
        if error is not None:
            status = "error"
    elif error is None:
        error = {"message": "the workflow failed", "stack": None}
    workers = message.get("workers")
    return Done(
        run_id=run_id,
        status=status,
        result=result,
        error=error,
        logs=logs,
        cold=message.get("cold") is True,
        workers=workers if isinstance(workers, int) else 0,
    )


def decode_result(text: Any, *, max_bytes: int) -> tuple[Any | None, dict[str, Any] | None]:
    """The return value from its JSON text: (value, None), or (None, error) when it is not JSON
    or over the cap. `null` and undefined both come back as None."""
    if text is None:
        return None, None
    if not isinstance(text, str):
        return None, {"message": "the result is not JSON text", "stack": None}
    size = len(text.encode())
    if size > max_bytes:
        message = f"result too large: {size} bytes of JSON, the limit is {max_bytes}"
        return None, {"message": message, "stack": None}
    try:
        return json.loads(text), None
    except ValueError:
        return None, {"message": "the result is not valid JSON", "stack": None}
    except RecursionError:
        return None, {"message": "the result is nested too deep to keep", "stack": None}


def _error(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    message, stack = raw.get("message"), raw.get("stack")
    text = message if isinstance(message, str) else "the workflow failed"
    return {
        "message": clip(text, MAX_ERROR_MESSAGE),
        "stack": clip(stack, MAX_ERROR_STACK) if isinstance(stack, str) else None,
    }


def clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars] + TRUNCATED


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `max_bytes`."""
    return text.encode()[: max(max_bytes, 0)].decode(errors="ignore")


def cap_logs(
    entries: Iterable[Any], *, max_entries: int, max_bytes: int, dropped: int = 0
) -> list[dict[str, str]]:
    """A prefix of the valid entries: at most `max_entries`, at most `max_bytes` of UTF-8
    messages. The first entry that does not fit whole is truncated to the bytes left (when at
    least MIN_TRUNCATED are) and ends the prefix. When anything was dropped here or upstream
    (`dropped`), one more entry says how much. Malformed entries count as dropped."""
    kept: list[dict[str, str]] = []
    used, full = 0, False
    for entry in entries:
        level = entry.get("level") if isinstance(entry, dict) else None
        message = entry.get("message") if isinstance(entry, dict) else None
        if level not in LEVELS or not isinstance(message, str):
            dropped += 1
            continue
        # A lone surrogate (JSON.stringify writes one as an escape) has no UTF-8 encoding:
        # written as its visible escape, as it is stored.
        message = storable_text(message)
        if full or len(kept) >= max_entries:
            full = True
            dropped += 1
            continue
        size, room = len(message.encode()), max_bytes - used
        if size > room:
            full = True
            if room < MIN_TRUNCATED:
                dropped += 1
                continue
            message = truncate_utf8(message, room - len(TRUNCATED.encode())) + TRUNCATED
            size = len(message.encode())
        kept.append({"level": level, "message": message})
        used += size
    if dropped:
        kept.append(
            {
                "level": "warn",
                "message": f"{dropped} more log entries dropped: a run keeps at most "
                f"{max_entries} entries and {max_bytes} bytes of logs",
            }
        )
    return kept


# --- fetch on the wire: bodies as base64, headers as [name, value] pairs


def fetch_request_from_wire(args: list[Any], *, max_body_bytes: int) -> FetchRequest:
    """Raises ValueError with a message for the code when the request is malformed."""
    wire = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
    if wire is None:
        raise ValueError("fetch: malformed request")
    url, method, headers, body = (wire.get(k) for k in ("url", "method", "headers", "body"))
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise ValueError("fetch: the URL is missing or too long")
    if not isinstance(method, str) or not method.isascii() or not 0 < len(method) <= 16:
        raise ValueError("fetch: invalid method")
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        raise ValueError(f"fetch: at most {MAX_HEADERS} headers")
    merged: dict[str, str] = {}
    for pair in headers:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(p, str) and len(p) <= MAX_HEADER_CHARS for p in pair)
        ):
            raise ValueError("fetch: malformed header")
        name, value = pair
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    data: bytes | None = None
    if body is not None:
        if not isinstance(body, str) or len(body) > (max_body_bytes + 2) // 3 * 4 + 4:
            raise ValueError(f"fetch: the body is larger than {max_body_bytes} bytes")
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise ValueError("fetch: malformed body") from exc
        if len(data) > max_body_bytes:
            raise ValueError(f"fetch: the body is larger than {max_body_bytes} bytes")
    return FetchRequest(url=url, method=method.upper(), headers=merged, body=data)


def fetch_response_to_wire(response: FetchResponse) -> dict[str, Any]:
    return {
        "status": int(response.status),
        "headers": [[str(k), str(v)] for k, v in response.headers.items()],
        "body": base64.b64encode(response.body).decode() if response.body else None,
    }
