"""The bench's stand-in for autovacuum picks the tables autovacuum would, by its formulas."""

from __future__ import annotations

from tests.bench.autovacuum import TableCounts, Thresholds, cost_settings, due

DEFAULTS = Thresholds()  # the server defaults: 50 + 20 % dead, 1000 + 20 % inserted, 50 + 10 %


def counts(name: str, reltuples: float, *, dead=0, inserted=0, modified=0) -> TableCounts:
    return TableCounts(name, reltuples, dead, inserted, modified)


def test_a_table_past_the_analyze_threshold_is_analyzed_only() -> None:
    # 50 + 10 % of 1,000 = 150 changes: 151 is past it, 150 is not.
    tables = [counts("d.a", 1000, modified=151), counts("d.b", 1000, modified=150)]
    assert due(tables, DEFAULTS) == ["ANALYZE d.a"]


def test_a_table_grown_from_nothing_is_analyzed_after_its_first_fifty_rows() -> None:
    # A new day's partition: never analyzed (reltuples 0), rows inserted since.
    assert due([counts("d.p", 0, inserted=51, modified=51)], DEFAULTS) == ["ANALYZE d.p"]


def test_dead_rows_or_inserts_past_their_thresholds_vacuum_the_table() -> None:
    tables = [
        counts("d.dead", 1000, dead=251),  # 50 + 20 % of 1,000
        counts("d.inserted", 1000, inserted=1201),  # 1,000 + 20 % of 1,000
        counts("d.both", 1000, dead=251, modified=151),
        counts("d.quiet", 1000, dead=250, inserted=1200, modified=150),
    ]
    assert due(tables, DEFAULTS) == [
        "VACUUM d.dead",
        "VACUUM d.inserted",
        "VACUUM (ANALYZE) d.both",
    ]


def test_the_thresholds_and_throttle_are_the_servers_own() -> None:
    settings = {
        "autovacuum_vacuum_threshold": "10",
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_insert_threshold": "-1",
        "autovacuum_vacuum_insert_scale_factor": "0.2",
        "autovacuum_analyze_threshold": "5",
        "autovacuum_analyze_scale_factor": "0",
        "autovacuum_vacuum_cost_delay": "2",
        "autovacuum_vacuum_cost_limit": "-1",
        "vacuum_cost_limit": "200",
    }
    thresholds = Thresholds.of(settings)
    assert due([counts("d.a", 10**6, dead=11)], thresholds) == ["VACUUM d.a"]
    assert due([counts("d.b", 10**6, modified=6)], thresholds) == ["ANALYZE d.b"]
    assert cost_settings(settings) == {"vacuum_cost_delay": "2", "vacuum_cost_limit": "200"}
    assert cost_settings(settings | {"autovacuum_vacuum_cost_limit": "400"}) == {
        "vacuum_cost_delay": "2",
        "vacuum_cost_limit": "400",
    }
