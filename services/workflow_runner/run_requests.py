"""Pure: a run request from the bytes of a `roomhooks.workflow-runs` record, or the reason it
is not one. A record that is not a valid request never will be: it goes to
`roomhooks.workflow-runs.dlq` with that reason, once, and the consumer goes on past it."""

from __future__ import annotations

from pydantic import ValidationError

from shared.messages import WorkflowRunRequested

MAX_REASON_CHARS = 300


def read_request(raw: bytes | None) -> WorkflowRunRequested | str:
    """The request, or why these bytes are not one (a short, readable sentence)."""
    if raw is None:
        return "invalid run request: no value"
    try:
        return WorkflowRunRequested.model_validate_json(raw)
    except ValidationError as exc:
        return f"invalid run request: {_first_error(exc)}"[:MAX_REASON_CHARS]
    except (ValueError, RecursionError) as exc:  # pydantic's own JSON reader raises neither
        return f"invalid run request: {type(exc).__name__}"


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "does not validate"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = first.get("msg", "invalid")
    # A message may quote the input: keep it printable whatever the producer sent.
    text = f"{where}: {message}{more}" if where else f"{message}{more}"
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
