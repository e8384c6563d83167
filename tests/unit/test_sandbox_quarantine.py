"""quarantine: a workflow past a limit runs in quarantine for a while, then back with the others."""

from __future__ import annotations

from services.workflow_runner.sandbox.quarantine import Quarantine


def test_a_workflow_is_held_until_its_time_is_over_then_forgotten() -> None:
    quarantine = Quarantine(seconds=600)
    assert quarantine.add("wf-1", now=1000.0)
    assert quarantine.holds("wf-1", now=1600.0)
    assert not quarantine.holds("wf-2", now=1000.0)
    assert not quarantine.holds("wf-1", now=1600.5)
    assert quarantine.add("wf-1", now=1700.0)  # forgotten: a new quarantine


def test_a_second_strike_extends_the_quarantine_from_then() -> None:
    quarantine = Quarantine(seconds=600)
    assert quarantine.add("wf-1", now=0.0)
    assert not quarantine.add("wf-1", now=500.0)  # already held: not new
    assert quarantine.holds("wf-1", now=1050.0)
    assert not quarantine.holds("wf-1", now=1101.0)
