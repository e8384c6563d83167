"""Which workflows run in quarantine, and until when. Pure: the time is passed in.

A workflow that went past a time limit or crashed its host (again, alone) runs on its
organization's quarantine host for QUARANTINE_S: where it strikes again, it hits only the
others there. Its first strike fell on its organization's host.
"""

from __future__ import annotations

# How long a workflow that ran past a time limit, or crashed its host, runs in quarantine.
QUARANTINE_S = 600.0


class Quarantine:
    """Workflow ids and the (monotonic) time their quarantine ends."""

    def __init__(self, seconds: float = QUARANTINE_S) -> None:
        self.seconds = seconds
        self._until: dict[str, float] = {}

    def holds(self, workflow_id: str, *, now: float) -> bool:
        """Whether the workflow's runs go to its organization's quarantine host; forgotten
        once its time is over."""
        until = self._until.get(workflow_id)
        if until is not None and until < now:
            del self._until[workflow_id]
            return False
        return until is not None

    def add(self, workflow_id: str, *, now: float) -> bool:
        """Quarantine the workflow for `seconds` from `now` (again: from now); True when it
        was not quarantined yet."""
        new = workflow_id not in self._until
        self._until[workflow_id] = now + self.seconds
        return new
