"""Part 10, ordered delivery: deliveries/s to 100 webhooks with `ordering: "room"` over 1,000
rooms, beside the unordered figure (part 1's workload) measured just before it.

10 accounts of their own, each with 10 ordered webhooks on `participant.joined` in every room
(no room scope) and 100 rooms: each event makes 10 deliveries, and each of the 10,000
(webhook, room) pairs is sent one delivery at a time. Their own accounts, so no other part's
events reach them.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.bench.load import Target
from tests.bench.pipeline import Workload, wait_for_index
from tests.bench.stack import Stack

ACCOUNTS = 10
WEBHOOKS_PER_ACCOUNT = 10
ROOMS_PER_ACCOUNT = 100


async def create_ordered_workload(
    stack: Stack, enabled_before: int, progress: Callable[[str], None]
) -> Workload:
    """The ordered webhooks and the rooms the events go to; `enabled_before`: the enabled
    webhooks fanout holds already."""
    assert stack.receiver is not None
    accounts = [await stack.create_account(f"bench-ordered-{a}") for a in range(ACCOUNTS)]
    secrets = {}
    for a, account in enumerate(accounts):
        progress(f"ordered webhooks: account {a + 1}/{ACCOUNTS}")
        for w in range(WEBHOOKS_PER_ACCOUNT):
            webhook = await stack.create_webhook(
                account,
                {
                    "url": stack.receiver.hook_url(f"o{a}w{w}"),
                    "events": ["participant.joined"],
                    "ordering": "room",
                },
            )
            secrets[webhook["id"]] = webhook["secret"]
    await wait_for_index(stack, enabled_before + ACCOUNTS * WEBHOOKS_PER_ACCOUNT)
    targets = [
        Target(account.id, f"ordered-room-{a}-{r}")
        for r in range(ROOMS_PER_ACCOUNT)
        for a, account in enumerate(accounts)
    ]
    return Workload(accounts, targets, secrets)
