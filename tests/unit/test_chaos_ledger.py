"""The chaos suite's accounting of (webhook, event) pairs against what the receiver saw."""

from tests.chaos.ledger import Ledger, Receipt


def _ledger(*ids: str) -> Ledger:
    ledger = Ledger()
    for delivery_id in ids:
        ledger.expect(delivery_id)
    return ledger


def test_a_pair_nobody_received_is_lost() -> None:
    settled = _ledger("a", "b").settle([Receipt("a", 1, 0.0)])
    assert (settled.delivered, settled.lost, settled.duplicated) == (1, 1, 0)


def test_a_retry_after_a_failed_attempt_is_not_a_duplicate() -> None:
    settled = _ledger("a").settle([Receipt("a", 1, 0.0), Receipt("a", 2, 1.0)])
    assert (settled.delivered, settled.lost, settled.duplicated) == (1, 0, 0)


def test_the_same_attempt_sent_again_is_a_duplicate() -> None:
    settled = _ledger("a").settle([Receipt("a", 1, 0.0), Receipt("a", 1, 5.0)])
    assert settled.duplicated == 1


def test_a_request_for_a_pair_nobody_published_is_counted_apart() -> None:
    settled = _ledger("a").settle([Receipt("a", 1, 0.0), Receipt("zzz", 1, 0.0)])
    assert (settled.delivered, settled.unexpected) == (1, 1)
