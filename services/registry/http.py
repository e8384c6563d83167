"""The envelope every answer wears, and the middlewares that guarantee it.

`{"type":"response","success":bool,"description":str,"data":obj|null,"error":null|{...}}`:
handlers return `ok(...)` or raise `ApiError`; anything else they raise becomes an envelope
here too (a validation error a 400 naming the field, an unexpected error a logged 500).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, Field, ValidationError

from services.registry.code_gate import ChecksBusy
from services.registry.errors import InvalidChange, NotFound, QuotaExceeded
from services.registry.json_body import BodyRefused, parse_body
from services.registry.rate_limits import Verdict
from shared.pagination import InvalidCursor

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The Verdict of the caller's key bucket, set by the Authorizer: its RateLimit-* headers go on
# every answer to a request that spent from it.
RATE_LIMIT = web.RequestKey("rate_limit", Verdict)


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(description="Each field at fault; empty when none is.")


class ErrorEnvelope(BaseModel):
    type: Literal["response"] = "response"
    success: Literal[False] = False
    description: str
    data: None = None
    error: ErrorInfo


class ApiError(Exception):
    """A refusal: `details` names each field at fault ([] when no field is), `headers` go on
    the answer (Retry-After, RateLimit-*)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _ascii_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def ok(description: str, data: dict[str, Any], *, status: int = 200) -> web.Response:
    return _answered(description, _dumps(data), status)


def ok_serialized(description: str, data_json: str, *, status: int = 200) -> web.Response:
    """`ok` for `data` already serialized (compact JSON, as `_dumps` writes it)."""
    return _answered(description, data_json, status)


def _answered(description: str, data_json: str, status: int) -> web.Response:
    """The success envelope around `data_json` (compact JSON, as `_dumps` writes it)."""
    text = (
        '{"type":"response","success":true,"description":'
        f'{_dumps(description)},"data":{data_json},"error":null}}'
    )
    return web.Response(text=text, status=status, content_type="application/json")


def fail(error: ApiError) -> web.Response:
    body = {
        "type": "response",
        "success": False,
        "description": error.message,
        "data": None,
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }
    # ASCII escapes: a message may quote the tenant's input, lone surrogates included.
    return web.json_response(body, status=error.status, dumps=_ascii_dumps, headers=error.headers)


_LOC_NAMES = {"room_id": "roomId", "retry_schedule": "retrySchedule"}


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the API spells it: `events[1]`, `roomId`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = _LOC_NAMES.get(str(part), str(part))
            path += f".{name}" if path else name
    return path or "body"


def validation_error(exc: ValidationError) -> ApiError:
    details = []
    for err in exc.errors(include_url=False):
        field = field_path(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "field required"
        details.append({"field": field, "message": message})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return ApiError(400, "validation_error", summary, details)


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise ApiError(
            400,
            "invalid_body",
            "body: a JSON object is required",
            [{"field": "body", "message": "a JSON object is required"}],
        )
    try:
        return parse_body(raw)
    except BodyRefused as exc:
        code = "validation_error" if exc.details[0]["field"] != "body" else "invalid_body"
        raise ApiError(400, code, exc.message, exc.details) from exc


def build_middlewares(requests: Counter, latency: Histogram) -> list[Any]:
    @web.middleware
    async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except ApiError as exc:
            response = fail(exc)
        except ValidationError as exc:
            response = fail(validation_error(exc))
        except InvalidChange as exc:
            response = fail(
                ApiError(
                    400,
                    "validation_error",
                    str(exc),
                    [{"field": exc.field, "message": exc.message}],
                )
            )
        except InvalidCursor as exc:
            response = fail(
                ApiError(
                    400,
                    "validation_error",
                    f"cursor: {exc}",
                    [{"field": "cursor", "message": str(exc)}],
                )
            )
        except NotFound:
            response = fail(ApiError(404, "not_found", "no such resource in this account"))
        except QuotaExceeded as exc:
            response = fail(ApiError(409, "quota_exceeded", str(exc)))
        except ChecksBusy as exc:
            response = fail(
                ApiError(
                    503,
                    "busy",
                    f"{exc}: retry after {exc.retry_after_s} s",
                    headers={"Retry-After": str(exc.retry_after_s)},
                )
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = fail(_http_error(exc))
        except Exception:  # the one top-level catch: log, answer 500, keep serving
            log.exception("http.unhandled_error", method=request.method, route=route_name)
            response = fail(ApiError(500, "internal_error", "internal error"))
        spent = request.get(RATE_LIMIT)
        if spent is not None and "RateLimit-Limit" not in response.headers:
            response.headers.update(spent.headers())
        requests.labels(request.method, route_name, str(response.status)).inc()
        latency.labels(request.method, route_name).observe(time.perf_counter() - started)
        return response

    return [envelope]


def _http_error(exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (unknown route or method, a body over client_max_size) in the
    envelope, with what its plain-text answer would have said."""
    message = exc.reason
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"body: {exc.text}"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"method {exc.method} is not allowed here (allowed: {allowed})"
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return ApiError(exc.status, _http_code(exc.status), message, headers=headers)


def _http_code(status: int) -> str:
    return {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }.get(status, "http_error")
