"""Every (webhook, event) pair a chaos run expects, checked against what the receiver saw.

Pure accounting: the scenario publishes events with known ids, so the delivery id of each
pair is known in advance (`delivery_id_for(webhook, event)`); the receiver reports one entry
per request it got. A pair is lost when no request for it arrived. A duplicate is the same
attempt of a pair sent again (a crash between the POST and its record repeats it); a retry
after a failed attempt has the next number and is not one. At-least-once allows duplicates;
they must carry the same `webhook-id`, which the receiver counts separately.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Receipt:
    delivery_id: str
    attempt: int
    received_at: float


@dataclass
class Ledger:
    expected: set[str] = field(default_factory=set)

    def expect(self, delivery_id: str) -> None:
        self.expected.add(delivery_id)

    def settle(self, receipts: Iterable[Receipt]) -> Settled:
        """What arrived, against what was expected."""
        pairs: set[str] = set()
        per_attempt: Counter[tuple[str, int]] = Counter()
        unexpected = 0
        for receipt in receipts:
            if receipt.delivery_id not in self.expected:
                unexpected += 1
                continue
            pairs.add(receipt.delivery_id)
            per_attempt[(receipt.delivery_id, receipt.attempt)] += 1
        return Settled(
            expected=len(self.expected),
            delivered=len(pairs),
            lost=len(self.expected) - len(pairs),
            duplicated=sum(n - 1 for n in per_attempt.values()),
            unexpected=unexpected,
        )


@dataclass(frozen=True)
class Settled:
    expected: int
    delivered: int  # pairs that reached the receiver at least once
    lost: int  # pairs that never did
    duplicated: int  # requests that repeated an attempt of a pair already received
    unexpected: int  # requests for pairs nobody published
