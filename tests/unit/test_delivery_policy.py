"""Pure delivery decisions: outcomes, the retry schedule, Retry-After, the SSRF guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.policy import (
    AttemptResult,
    Final,
    Outcome,
    classify,
    decide,
    next_attempt_at,
    parse_retry_after,
    spill_delay,
)
from services.delivery.settings import DEFAULT_RETRY_SCHEDULE, DeliverySettings
from shared.ssrf import AddressPolicy

NOW = datetime(2026, 5, 29, 10, 0, tzinfo=UTC)
SCHEDULE = (1.0, 5.0, 30.0)


def result(outcome: Outcome, status: int | None = None, retry_after: float | None = None):
    return AttemptResult(outcome, NOW, 12, status_code=status, retry_after_s=retry_after)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (299, Outcome.SUCCESS),
        (301, Outcome.HTTP_ERROR),
        (400, Outcome.HTTP_ERROR),
        (410, Outcome.GONE),
        (429, Outcome.HTTP_ERROR),
        (500, Outcome.HTTP_ERROR),
        (503, Outcome.HTTP_ERROR),
    ],
)
def test_only_2xx_succeeds_and_410_means_gone(status, outcome):
    assert classify(status) is outcome


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 5.0), (3, 30.0)])
def test_failed_attempts_follow_the_1_5_30_schedule(attempt, delay):
    due = next_attempt_at(attempt, Outcome.HTTP_ERROR, now=NOW, schedule=SCHEDULE)
    assert due == NOW + timedelta(seconds=delay)


def test_the_default_schedule_is_1_5_30_seconds():
    assert DEFAULT_RETRY_SCHEDULE == SCHEDULE
    default = DeliverySettings.model_fields["retry_schedule"].get_default(call_default_factory=True)
    assert tuple(default) == SCHEDULE


def test_gives_up_after_last_scheduled_retry():
    assert next_attempt_at(4, Outcome.HTTP_ERROR, now=NOW, schedule=SCHEDULE) is None
    decision = decide(
        4, result(Outcome.HTTP_ERROR, 500), now=NOW, schedule=SCHEDULE, retry_after_max=600
    )
    assert decision.status is Final.FAILED and decision.next_attempt_at is None


def test_network_errors_are_retried_like_http_errors():
    decision = decide(
        1, result(Outcome.NETWORK_ERROR), now=NOW, schedule=SCHEDULE, retry_after_max=600
    )
    assert decision == decide(
        1, result(Outcome.HTTP_ERROR, 500), now=NOW, schedule=SCHEDULE, retry_after_max=600
    )
    assert decision.status is Final.PENDING


def test_success_ends_the_delivery():
    decision = decide(
        2, result(Outcome.SUCCESS, 200), now=NOW, schedule=SCHEDULE, retry_after_max=600
    )
    assert decision.status is Final.SUCCESS and decision.next_attempt_at is None


def test_gone_fails_at_once_and_disables_the_webhook():
    decision = decide(1, result(Outcome.GONE, 410), now=NOW, schedule=SCHEDULE, retry_after_max=600)
    assert decision.status is Final.FAILED and decision.disable_webhook


def test_blocked_addresses_are_not_retried():
    decision = decide(1, result(Outcome.BLOCKED), now=NOW, schedule=SCHEDULE, retry_after_max=600)
    assert decision.status is Final.FAILED and not decision.disable_webhook


@pytest.mark.parametrize(
    ("retry_after", "expected_delay"),
    [(20.0, 20.0), (0.0, 1.0), (10_000.0, 600.0)],
)
def test_retry_after_is_honoured_within_bounds(retry_after, expected_delay):
    decision = decide(
        1,
        result(Outcome.HTTP_ERROR, 429, retry_after),
        now=NOW,
        schedule=SCHEDULE,
        retry_after_max=600,
    )
    assert decision.next_attempt_at == NOW + timedelta(seconds=expected_delay)


def test_a_per_webhook_schedule_changes_the_number_of_attempts():
    schedule = (2.0,)
    assert next_attempt_at(1, Outcome.HTTP_ERROR, now=NOW, schedule=schedule) == NOW + timedelta(
        seconds=2
    )
    assert next_attempt_at(2, Outcome.HTTP_ERROR, now=NOW, schedule=schedule) is None


@pytest.mark.parametrize(
    ("header", "status", "seconds"),
    [
        ("120", 429, 120.0),
        ("7", 503, 7.0),
        ("7", 500, None),
        ("Fri, 29 May 2026 10:01:00 GMT", 503, 60.0),
        ("Fri, 29 May 2026 09:00:00 GMT", 429, 0.0),
        ("soon", 429, None),
        ("-5", 429, None),
        (None, 429, None),
    ],
)
def test_retry_after_parsing(header, status, seconds):
    assert parse_retry_after(header, status_code=status, now=NOW) == seconds


PRODUCTION = AddressPolicy.build(allow_loopback=False, allowed_networks=[])
DEV = AddressPolicy.build(allow_loopback=True, allowed_networks=[])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "fe80::1",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "::",
        "224.0.0.1",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "198.18.0.1",
    ],
)
def test_ssrf_guard_refuses_internal_addresses_in_production(address):
    assert not PRODUCTION.allows(address)


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34", "1.1.1.1"],
)
def test_ssrf_guard_allows_public_addresses(address):
    assert PRODUCTION.allows(address)


def test_dev_profile_allows_loopback_but_still_refuses_private_and_metadata():
    assert DEV.allows("127.0.0.1") and DEV.allows("::1")
    assert not DEV.allows("10.0.0.5") and not DEV.allows("169.254.169.254")


def test_operator_allowed_networks_pass_the_guard():
    policy = AddressPolicy.build(allow_loopback=False, allowed_networks=["10.20.0.0/16"])
    assert policy.allows("10.20.3.4") and not policy.allows("10.21.0.1")


def test_a_full_lane_of_an_answering_endpoint_spills_for_a_second():
    assert spill_delay(degraded=False, timeout_s=10) == timedelta(seconds=1)


def test_a_full_lane_of_an_endpoint_that_stopped_answering_spills_for_a_whole_timeout():
    assert spill_delay(degraded=True, timeout_s=10) == timedelta(seconds=10)


@pytest.mark.parametrize(("jitter", "delay"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_a_retry_waits_its_step_give_or_take_a_fifth(jitter, delay):
    due = next_attempt_at(1, Outcome.HTTP_ERROR, now=NOW, schedule=SCHEDULE, jitter=jitter)
    assert due is not None
    assert (due - NOW).total_seconds() == pytest.approx(delay)


def test_draws_spread_an_outages_retries_over_the_step():
    dues = {
        next_attempt_at(2, Outcome.NETWORK_ERROR, now=NOW, schedule=SCHEDULE, jitter=j / 10)
        for j in range(11)
    }
    assert len(dues) == 11
    assert all(4.0 <= (due - NOW).total_seconds() <= 6.0 for due in dues if due is not None)


@pytest.mark.parametrize("jitter", [0.0, 0.3, 1.0])
def test_jitter_never_sends_before_a_retry_after(jitter):
    decision = decide(
        1,
        result(Outcome.HTTP_ERROR, 429, retry_after=20.0),
        now=NOW,
        schedule=SCHEDULE,
        retry_after_max=600,
        jitter=jitter,
    )
    assert decision.next_attempt_at is not None
    delay = (decision.next_attempt_at - NOW).total_seconds()
    assert 20.0 <= delay <= 24.0


def test_a_retry_after_past_the_maximum_is_shortened_to_it():
    due = next_attempt_at(
        1, Outcome.HTTP_ERROR, now=NOW, schedule=SCHEDULE, retry_after=86400, jitter=0.0
    )
    assert due == NOW + timedelta(seconds=600)
