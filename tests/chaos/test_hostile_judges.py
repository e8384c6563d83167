"""The hostile scenarios' verdicts are pure: each broken promise is named, a kept one is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.kafka import Topics
from tests.chaos.hostile_endpoints import judge_hostile, lane_bound_s
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.tenant_checks import judge_letters, judge_runs
from tests.chaos.tenant_inputs import MESSAGES

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SCHEDULE = (1, 1)


def _row(status="failed", attempts=3, rows=None, starts=(0.0, 1.0, 2.0), error="HTTP 500"):
    return {
        "status": status,
        "attempts": attempts,
        "attempt_rows": attempts if rows is None else rows,
        "status_code": 500,
        "last_error": error,
        "first_started": T0,
        "last_ended": T0 + timedelta(seconds=starts[-1] + 1),
        "started_s": list(starts),
        "durations_ms": [10] * len(starts),
    }


def test_a_failed_delivery_with_its_attempts_and_reason_within_its_schedule_passes() -> None:
    verdict = judge_hostile({"d1": "nul-body"}, {"d1": _row()}, schedule=SCHEDULE)
    assert verdict.failures == [] and verdict.final == 1


def test_a_pending_hostile_delivery_fails_the_scenario() -> None:
    verdict = judge_hostile({"d1": "bad-location"}, {"d1": _row("pending")}, schedule=SCHEDULE)
    assert verdict.final == 0 and "still pending" in verdict.failures[0]


def test_more_attempts_than_the_schedule_allows_fail() -> None:
    row = _row(attempts=4, starts=(0.0, 1.0, 2.0, 3.0))
    verdict = judge_hostile({"d1": "nul-body"}, {"d1": row}, schedule=SCHEDULE)
    assert "the schedule allows 3" in verdict.failures[0]


def test_a_retry_before_its_step_fails() -> None:
    row = _row(starts=(0.0, 0.2, 1.2))
    verdict = judge_hostile({"d1": "nul-body"}, {"d1": row}, schedule=SCHEDULE)
    assert "retried 0.20 s after an attempt" in verdict.failures[0]


def test_a_missing_attempt_row_or_the_wrong_final_status_fails() -> None:
    rows = {"d1": _row(rows=2), "d2": _row("failed")}
    verdict = judge_hostile({"d1": "nul-body", "d2": "gzip-body"}, rows, schedule=SCHEDULE)
    text = " ".join(verdict.failures)
    assert "3 attempts but 2 attempt rows" in text
    assert "ended failed, expected success" in text


def test_a_webhook_whose_deliveries_outlast_one_at_a_time_fails() -> None:
    bound = lane_bound_s(1, SCHEDULE)
    row = _row() | {"last_ended": T0 + timedelta(seconds=bound + 1)}
    verdict = judge_hostile({"d1": "trickle-body"}, {"d1": row}, schedule=SCHEDULE)
    assert "its deliveries took" in verdict.failures[0]


def _sent(kind: str, n: int = 0):
    message = next(m for m in MESSAGES if m.kind == kind)
    return {message.key(n): message}


def test_a_bad_message_dead_lettered_once_with_its_reason_passes() -> None:
    topics, outcome = Topics("roomhooks"), ScenarioOutcome("t")
    sent = _sent("nul-id")
    letters = {k: [(topics.events_dlq, "id: contains NUL", topics.events)] for k in sent}
    judge_letters(outcome, topics, sent, letters, {})
    assert outcome.failures == []


def test_a_bad_message_dead_lettered_twice_elsewhere_or_without_its_field_fails() -> None:
    topics, outcome = Topics("roomhooks"), ScenarioOutcome("t")
    sent = _sent("run-id-not-uuid") | _sent("delivery-id-not-uuid") | _sent("nul-id")
    run_key, delivery_key, event_key = list(sent)
    letters = {
        run_key: [(topics.workflow_runs_dlq, "run_id: bad", topics.workflow_runs)] * 2,
        delivery_key: [(topics.events_dlq, "delivery_id: bad", topics.deliveries)],
        event_key: [(topics.events_dlq, "something went wrong", topics.events)],
    }
    judge_letters(outcome, topics, sent, letters, {})
    text = " ".join(outcome.failures)
    assert "dead-lettered 2 times" in text
    assert "expected roomhooks.deliveries.dlq" in text
    assert "names none of ('id',)" in text


def test_a_bad_user_name_may_be_delivered_instead_but_not_lost() -> None:
    topics = Topics("roomhooks")
    sent = _sent("nul-user-name", 0) | _sent("nul-user-name", 1)
    delivered, _lost = list(sent)
    outcome = ScenarioOutcome("t")
    judge_letters(outcome, topics, sent, {}, {delivered: "success"})
    assert outcome.details["bad_messages"]["right"] == 0  # both share the kind's verdict
    assert outcome.failures == [
        "nul-user-name: 1 wrong: ['neither dead-lettered nor delivered (delivery: None)']"
    ]


def test_attacker_runs_not_final_or_not_as_expected_are_named_once_per_workflow() -> None:
    outcome = ScenarioOutcome("t")
    outcome.details["runs_recorded"] = {"finished": 3, "rows": 3}
    runs = {
        "v1": {"status": "success"},
        "a1": {"status": "running"},
        "a2": {"status": "error", "error": '{"message": "refused"}'},
        "a3": {"status": "error", "error": '{"message": "result too large"}'},
    }
    attacker = {"a1": "returns NUL", "a2": "returns NUL", "a3": "returns 1 MB"}
    judge_runs(outcome, runs, ["v1"], attacker)
    assert outcome.failures == [
        "workflow 'returns NUL': 2 wrong: ['a run ended error, expected success:"
        ' {"message": "refused"}\', \'a run is running\']'
    ]
    assert (outcome.sent, outcome.delivered, outcome.lost) == (4, 3, 1)


def test_a_run_run_twice_shows_in_the_runner_count() -> None:
    outcome = ScenarioOutcome("t")
    outcome.details["runs_recorded"] = {"finished": 2, "rows": 1}
    judge_runs(outcome, {"v1": {"status": "success"}}, ["v1"], {})
    assert outcome.failures == [
        "the runner finished 2 executions for 1 final rows: some run was run again"
    ]
