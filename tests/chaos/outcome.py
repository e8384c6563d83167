"""What one chaos scenario reports: a row of `make chaos`'s table and of results.json.

A scenario passes when `failures` is empty; each failure says, in a sentence, which promise
was broken ("3 expected deliveries never reached the receiver"). Counts are of what the
scenario sends: deliveries for the pipeline scenarios, executions for the sandbox one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ScenarioOutcome:
    name: str
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    # Seconds from the fault (or the last of them) until the pipeline moved again; None: n/a.
    recovery_s: float | None = None
    failures: list[str] = field(default_factory=list)
    # Anything else worth keeping in results.json (per-fault timings, reasons, settings).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self, ok: bool, failure: str) -> None:
        """Record `failure` unless `ok`."""
        if not ok:
            self.failures.append(failure)

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}
