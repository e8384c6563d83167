"""The envelope every answer wears, and the middlewares that guarantee it.

`{"type":"response","success":bool,"description":str,"data":obj|null,"error":null|{...}}`:
handlers return `ok(...)` or raise `ApiError`; anything else they raise becomes an envelope
here too (a validation error a 400 naming the field, an unexpected error a logged 500).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from services.registry.service import InvalidChange, NotFound
from shared.pagination import InvalidCursor

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def ok(description: str, data: dict[str, Any], *, status: int = 200) -> web.Response:
    body = {
        "type": "response",
        "success": True,
        "description": description,
        "data": data,
        "error": None,
    }
    return web.json_response(body, status=status, dumps=_dumps)


def fail(error: ApiError) -> web.Response:
    body = {
        "type": "response",
        "success": False,
        "description": error.message,
        "data": None,
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }
    return web.json_response(body, status=error.status, dumps=_dumps)


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
        raise ApiError(400, "invalid_body", "body: a JSON object is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_body", f"body: invalid JSON ({exc})") from exc


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
            response = fail(ApiError(400, "validation_error", f"cursor: {exc}"))
        except NotFound:
            response = fail(ApiError(404, "not_found", "no such resource in this account"))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = fail(ApiError(exc.status, _http_code(exc.status), exc.reason))
        except Exception:  # the one top-level catch: log, answer 500, keep serving
            log.exception("http.unhandled_error", method=request.method, route=route_name)
            response = fail(ApiError(500, "internal_error", "internal error"))
        requests.labels(request.method, route_name, str(response.status)).inc()
        latency.labels(request.method, route_name).observe(time.perf_counter() - started)
        return response

    return [envelope]


def _http_code(status: int) -> str:
    return {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }.get(status, "http_error")
