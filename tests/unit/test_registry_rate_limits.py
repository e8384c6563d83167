"""The API's token buckets: a burst at once, then the refill rate; headers that say so."""

from __future__ import annotations

from services.registry.rate_limits import Buckets

T0 = 5_000_000  # ms on the monotonic clock


def test_a_full_bucket_lets_its_burst_through_then_refuses():
    buckets = Buckets(rate_per_s=2, burst=3)
    verdicts = [buckets.take("key", now_ms=T0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts[:3]] == [2, 1, 0]


def test_a_refused_request_is_told_when_one_will_pass_and_spends_nothing():
    buckets = Buckets(rate_per_s=2, burst=1)
    assert buckets.take("key", now_ms=T0).allowed
    refused = buckets.take("key", now_ms=T0 + 100)
    assert not refused.allowed and refused.retry_after_s == 1
    assert refused.headers()["Retry-After"] == "1"
    # Half a second after the first, one token has come back (2/s): the refusal cost nothing.
    assert buckets.take("key", now_ms=T0 + 500).allowed


def test_the_bucket_refills_at_the_rate():
    buckets = Buckets(rate_per_s=10, burst=5)
    for _ in range(5):
        buckets.take("key", now_ms=T0)
    assert not buckets.take("key", now_ms=T0).allowed
    assert buckets.take("key", now_ms=T0 + 100).allowed
    assert not buckets.take("key", now_ms=T0 + 100).allowed
    # At +300 ms two more tokens are back; one is spent here.
    assert buckets.take("key", now_ms=T0 + 300).remaining == 1
    assert buckets.take("key", now_ms=T0 + 2_000).remaining == 4  # full again, less this one


def test_rates_under_one_per_second_work():
    buckets = Buckets(rate_per_s=0.5, burst=1)
    assert buckets.take("webhook", now_ms=T0).allowed
    assert not buckets.take("webhook", now_ms=T0 + 1_000).allowed
    assert buckets.take("webhook", now_ms=T0 + 2_000).allowed


def test_names_have_buckets_of_their_own():
    buckets = Buckets(rate_per_s=1, burst=1)
    assert buckets.take("a", now_ms=T0).allowed
    assert not buckets.take("a", now_ms=T0).allowed
    assert buckets.take("b", now_ms=T0).allowed


def test_peek_says_whether_a_request_would_pass_without_spending():
    buckets = Buckets(rate_per_s=1, burst=2)
    for _ in range(5):
        assert buckets.peek("address", now_ms=T0).allowed
    buckets.take("address", now_ms=T0)
    buckets.take("address", now_ms=T0)
    assert not buckets.peek("address", now_ms=T0).allowed


def test_headers_say_the_limit_what_remains_and_when_the_bucket_is_full():
    buckets = Buckets(rate_per_s=4, burst=8)
    verdict = buckets.take("key", now_ms=T0)
    assert verdict.headers() == {
        "RateLimit-Limit": "8",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "1",  # one token owed, back in 250 ms: rounded up
    }


def test_the_names_kept_are_bounded_forgetting_the_least_recently_used():
    buckets = Buckets(rate_per_s=1, burst=1, max_names=2)
    buckets.take("a", now_ms=T0)
    buckets.take("b", now_ms=T0)
    buckets.take("c", now_ms=T0)  # "a" forgotten: it starts again with a full bucket
    assert buckets.take("a", now_ms=T0).allowed
    assert not buckets.take("c", now_ms=T0).allowed
