"""Pure delivery decisions: what an attempt's outcome means and when to try again."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"  # 2xx
    HTTP_ERROR = "http_error"  # any other status: retry
    GONE = "gone"  # 410: the receiver asks us to stop; the webhook is disabled
    NETWORK_ERROR = "network_error"  # timeout, refused, reset, DNS: retry
    BLOCKED = "blocked"  # the SSRF guard refused the address: retrying will not help
    # The webhook's stored secret does not open (a key missing from ROOMHOOKS_SECRETS_KEY,
    # or an altered row): no request is made; retried, as an operator may fix the key.
    SECRET_UNREADABLE = "secret_unreadable"  # noqa: S105 - an outcome, not a password


class Final(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class AttemptResult:
    """What one POST came to; produced by the dispatcher, no database involved."""

    outcome: Outcome
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Decision:
    status: Final
    next_attempt_at: datetime | None
    disable_webhook: bool = False


def classify(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.SUCCESS
    if status_code == 410:
        return Outcome.GONE
    return Outcome.HTTP_ERROR


# A retry waits its scheduled step times a factor drawn from [1 - JITTER, 1 + JITTER]: an
# outage's backlog reaches its endpoint spread over 0.4 of a step, and 1 s stays about 1 s.
JITTER = 0.2


def jittered(delay: float, jitter: float | None) -> float:
    """`delay` moved by up to ±JITTER of itself; `jitter` is a uniform draw from [0, 1]
    (0.5 keeps the delay; None: no jitter)."""
    if jitter is None:
        return delay
    return delay * (1 + JITTER * (2 * jitter - 1))


def next_attempt_at(
    attempt: int,
    outcome: Outcome,
    *,
    now: datetime,
    schedule: Sequence[float],
    retry_after: float | None = None,
    retry_after_max: float = 600.0,
    jitter: float | None = None,
) -> datetime | None:
    """When to try again after attempt number `attempt` (1-based); None: the schedule is spent.

    Attempt n failing waits schedule[n-1], jittered (see `jittered`). A Retry-After header,
    when it asks for longer, is honoured as given, up to `retry_after_max` (so one answer
    cannot park a delivery for days); jitter only ever adds to it (up to JITTER of it), never
    sends sooner than asked.
    """
    if outcome in (Outcome.SUCCESS, Outcome.GONE, Outcome.BLOCKED):
        return None
    if attempt > len(schedule):
        return None
    delay = jittered(schedule[attempt - 1], jitter)
    if retry_after is not None:
        asked = min(retry_after, retry_after_max)
        delay = max(delay, asked * (1 + JITTER * (jitter or 0.0)))
    return now + timedelta(seconds=delay)


def decide(
    attempt: int,
    result: AttemptResult,
    *,
    now: datetime,
    schedule: Sequence[float],
    retry_after_max: float,
    jitter: float | None = None,
) -> Decision:
    if result.outcome is Outcome.SUCCESS:
        return Decision(Final.SUCCESS, None)
    if result.outcome is Outcome.GONE:
        return Decision(Final.FAILED, None, disable_webhook=True)
    due = next_attempt_at(
        attempt,
        result.outcome,
        now=now,
        schedule=schedule,
        retry_after=result.retry_after_s,
        retry_after_max=retry_after_max,
        jitter=jitter,
    )
    return Decision(Final.PENDING, due) if due is not None else Decision(Final.FAILED, None)


# Delta-seconds as RFC 9110 spells them: ASCII digits only (str.isdigit takes "²", which
# float() then refuses), and few enough that the delay is a number of seconds, not of eons.
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")


def parse_retry_after(value: str | None, *, status_code: int, now: datetime) -> float | None:
    """Seconds asked for by a Retry-After header on 429/503; None when absent or unusable
    (then the schedule applies). Never raises, whatever the header holds."""
    if value is None or status_code not in (429, 503):
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# A delivery that a busy (answering) webhook's full lane cannot take waits this long.
SPILL_DELAY = timedelta(seconds=1)


def spill_delay(*, degraded: bool, timeout_s: float) -> timedelta:
    """How long a delivery that its webhook's full lane cannot take waits in Postgres before
    it is claimed again. A second for an endpoint that answers; a whole attempt timeout for one
    that stopped answering: its lane frees one slot per timeout at best, and making its
    deliveries due sooner only has every claim scan rows it must skip."""
    return timedelta(seconds=timeout_s) if degraded else SPILL_DELAY


class HeldFate(StrEnum):
    """What becomes of the deliveries a webhook holds (see `held_fate`)."""

    KEEP = "keep"  # still disabled: they wait
    RESUME = "resume"  # enabled again: due now, in order of creation
    FAIL = "fail"  # deleted: they end as failed


def held_fate(*, exists: bool, enabled: bool) -> HeldFate:
    if not exists:
        return HeldFate.FAIL
    return HeldFate.RESUME if enabled else HeldFate.KEEP


class RecoveryStep(StrEnum):
    """A recovery job's next step (see `recovery_step`)."""

    MARK = "mark"  # make its next batch of failed deliveries due
    WAIT = "wait"  # enough of them are due, in flight or held: let those be attempted
    FINISH = "finish"  # every delivery of the window made due and attempted
    FAIL = "fail"  # its webhook is deleted: nothing more can be sent


def recovery_step(
    *, webhook_exists: bool, exhausted: bool, outstanding: int, batch: int
) -> RecoveryStep:
    """Mark a new batch only once at most half a batch of the job's deliveries waits to be
    attempted: a job keeps at most 1.5 batches due (or held, while its webhook is disabled)
    at once, however large its window, so claims and progress counts stay bounded."""
    if not webhook_exists:
        return RecoveryStep.FAIL
    if exhausted:
        return RecoveryStep.FINISH if outstanding <= 0 else RecoveryStep.WAIT
    return RecoveryStep.MARK if outstanding <= batch // 2 else RecoveryStep.WAIT
