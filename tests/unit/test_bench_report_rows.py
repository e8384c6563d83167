"""The bench table's extra rows: what each process spent per delivery, the backlog figure,
and part 4's latency over its window."""

from __future__ import annotations

from tests.bench import machine_speed, report


def test_the_table_gives_the_backlog_figure_its_ratio_and_the_cost_of_a_delivery() -> None:
    details = {
        "raw": {"per_s": 6000.0},
        "delivery_backlog": {
            "per_s": 3000.0,
            "cpu_percent": {"delivery_backlog": 90.0, "postgres": 30.0, "fanout": 2.0},
        },
    }
    result = report.results(details, cores=2, commit="c")
    assert result["delivery_backlog_per_s"] == 3000.0
    assert result["backlog_ratio_to_raw"] == 0.5
    table = report.table(result, details)
    assert "(1) backlog: CPU % delivery_backlog" in table
    assert "300 µs a delivery" in table  # 90 % of a core over 3,000 deliveries a second
    assert "100 µs a delivery" in table
    assert "CPU % fanout" not in table


def test_the_table_gives_each_process_cpu_per_delivery_and_per_raw_post() -> None:
    details = {
        "delivery": {
            "per_s": 2000.0,
            "cpu_percent": {"delivery": 60.0, "fanout": 20.0, "other processes": 5.0},
        },
        "raw": {"per_s": 5000.0, "cpu_percent": {"bench (publisher/client)": 80.0}},
    }
    table = report.table(report.results(details, cores=2, commit="c"), details)
    assert "300 µs a delivery" in table  # delivery: 60 % of a core over 2,000 a second
    assert "100 µs a delivery" in table  # fanout
    assert "400 µs a delivery" in table  # all of the above (not the other processes)
    assert "160 µs a POST" in table  # the raw client


def test_latency_medians_by_slice_show_a_climb_over_the_window() -> None:
    # 30 s of samples: ~50 ms, then ~100, then ~150; one before the window opened.
    series = [[-1.0, 999.0]] + [[t / 10, 50.0 * (1 + t // 100)] for t in range(300)]
    assert report.p50_by_slice(series, 10.0) == [50.0, 100.0, 150.0]
    details = {
        "latency_1000": {
            "samples": 300,
            "sent_in_window": 300,
            "series": series,
            "cpu_percent": {"broker": 64.0, "delivery": 39.0},
        }
    }
    table = report.table(report.results(details, cores=2, commit="c"), details)
    assert "50.0 → 100 → 150" in table
    assert "(4) 1000/s CPU % broker" in table
    assert "delivery 39" in table


def test_the_table_says_what_the_autovacuum_stand_in_did() -> None:
    details = {
        "postgres": {"autovacuum": "off"},
        "autovacuum_stand_in": {
            "rounds": 14,
            "vacuums": 6,
            "analyzes": 9,
            "busy_s": 12.4,
            "errors": [],
        },
    }
    table = report.table(report.results(details, cores=2, commit="c"), details)
    assert "autovacuum off: the bench's stand-in" in table
    assert "6 VACUUM, 9 ANALYZE" in table
    assert "in 14 rounds\n" in table + "\n"  # and no failures after it


def test_the_table_gives_each_gauge_of_the_machine_before_the_run_and_its_parts() -> None:
    details = {
        "machine_speed": {
            "before": {"loop_s": 0.122, "round_trip_us": 4.21, "random_read_ns": 266.4},
            "parts": {
                "delivery": {"loop_s": 0.131, "round_trip_us": 5.02, "random_read_ns": 281.0},
                "raw": {"loop_s": 0.204, "round_trip_us": 3.94, "random_read_ns": 270.2},
            },
        }
    }
    table = report.table(report.results(details, cores=2, commit="c"), details)
    rows = {line.split("  ")[0]: line for line in table.splitlines() if line.startswith("machine:")}
    assert "0.12 → 0.13-0.20 s" in rows["machine: a pure-Python loop"]
    assert "2,000,000 iterations, best of 3" in rows["machine: a pure-Python loop"]
    assert "4.2 → 3.9-5.0 µs" in rows["machine: a loopback TCP round trip"]
    assert "266.4 → 270.2-281.0 ns" in rows["machine: a random memory read"]
    assert "compare runs whose gauges read alike" in table


def test_a_run_stopped_before_its_parts_gives_the_speed_it_measured() -> None:
    details = {"machine_speed": {"before": {"loop_s": 0.412, "round_trip_us": 4.0}}}
    table = report.table(report.results(details, cores=2, commit="c"), details)
    rows = [line for line in table.splitlines() if line.startswith("machine:")]
    assert len(rows) == 2  # no reading of memory: no row for it
    assert "0.41 s" in rows[0] and "→" not in rows[0]


def test_the_table_gives_the_broker_alone_per_case_with_its_slices() -> None:
    details = {
        "broker": {
            "rate": 1000,
            "duration_s": 30,
            "slice_s": 10,
            "cases": {
                "producer only": {
                    "broker_cpu_percent": 7.8,
                    "broker_cpu_percent_by_slice": [7.7, 8.1, 7.5],
                    "published": 30000,
                    "read": None,
                    "batches_read": None,
                },
                "one reader": {
                    "broker_cpu_percent": 34.9,
                    "broker_cpu_percent_by_slice": [24.2, 38.0, 42.6],
                    "published": 30000,
                    "read": 30000,
                    "batches_read": 3889,
                },
            },
        }
    }
    table = report.table(report.results(details, cores=2, commit="c"), details)
    rows = [line for line in table.splitlines() if line.startswith("(12)")]
    assert len(rows) == 2
    assert rows[0].startswith("(12) broker alone, producer only: CPU %")
    assert "by 10-s slice 7.70 → 8.10 → 7.50" in rows[0] and "batches read" not in rows[0]
    assert "24.2 → 38.0 → 42.6; 3,889 batches read" in rows[1]


def test_a_reading_has_a_positive_value_for_every_gauge() -> None:
    reading = machine_speed.reading()
    assert list(reading) == [gauge.key for gauge in machine_speed.GAUGES]
    assert all(value > 0 for value in reading.values())
