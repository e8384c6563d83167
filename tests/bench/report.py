"""What a run leaves: the terminal table, results.json (the figures' keys, nothing else),
details.json (everything measured, for whoever profiles next) and latency.png."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from tests.bench import machine_speed

# results.json holds exactly these keys, in this order (tests/bench/README.md).
KEYS = (
    "delivery_per_s",
    "raw_post_per_s",
    "ratio_to_raw",
    "delivery_backlog_per_s",
    "backlog_ratio_to_raw",
    "celery_per_s",
    "ratio_to_celery",
    "latency_200_p50_ms",
    "latency_200_p95_ms",
    "latency_200_p99_ms",
    "latency_1000_p50_ms",
    "latency_1000_p95_ms",
    "latency_1000_p99_ms",
    "hol_kept_fraction",
    "ordered_delivery_per_s",
    "ordered_to_unordered",
    "fanout_matcher_events_per_s",
    "fanout_service_events_per_s",
    "fanout_service_2_replicas_events_per_s",
    "fanout_rss_mb",
    "workflow_exec_per_s",
    "workflow_p50_ms",
    "workflow_p99_ms",
    "workflow_cold_start_ms",
    "workflow_cold_start_back_to_back_ms",
    "registry_get_p50_ms",
    "registry_get_p99_ms",
    "registry_create_per_s",
    "scale_deliveries_failed_p50_ms",
    "scale_deliveries_failed_p99_ms",
    "scale_deliveries_failed_deep_p99_ms",
    "scale_events_p50_ms",
    "scale_events_p99_ms",
    "scale_events_deep_p99_ms",
    "scale_recovery_kept_fraction",
    "scale_recovery_s",
    "scale_retention_day_s",
    "soak_rss_growth_mb_per_min",
    "cores",
    "commit",
)

# The width of the slices part 4's medians are shown by.
LATENCY_SLICE_S = 10.0

# % of one core used by other processes during a part above which the table warns.
BUSY_ELSEWHERE = 30.0

# (at least?, bound) per key with a target in the issue (2 cores, everything on one machine).
TARGETS: dict[str, tuple[bool, float]] = {
    "delivery_per_s": (True, 2000),
    "ratio_to_raw": (True, 0.6),
    "ratio_to_celery": (True, 6),
    "latency_200_p95_ms": (False, 50),
    "latency_1000_p99_ms": (False, 100),
    "hol_kept_fraction": (True, 0.9),
    "fanout_matcher_events_per_s": (True, 20_000),
    "fanout_service_events_per_s": (True, 20_000),
    "fanout_service_2_replicas_events_per_s": (True, 20_000),
    "fanout_rss_mb": (False, 300),
    "workflow_exec_per_s": (True, 300),
    "workflow_p50_ms": (False, 5),
    "workflow_cold_start_ms": (False, 15),
    "registry_get_p99_ms": (False, 10),
    "scale_deliveries_failed_p99_ms": (False, 20),
    "scale_deliveries_failed_deep_p99_ms": (False, 20),
    "scale_events_p99_ms": (False, 20),
    "scale_events_deep_p99_ms": (False, 20),
    "scale_recovery_kept_fraction": (True, 0.9),
    "scale_retention_day_s": (False, 1),
}


def _get(details: dict, part: str, *path: str) -> float | None:
    value: Any = details.get(part)
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def results(details: dict, *, cores: int, commit: str) -> dict[str, Any]:
    """The figures' keys from what the parts measured; None for a part not run."""
    delivery = _get(details, "delivery", "per_s")
    raw = _get(details, "raw", "per_s")
    backlog = _get(details, "delivery_backlog", "per_s")
    celery = _get(details, "celery", "per_s")
    hol = _get(details, "hol", "per_s")
    # Part 5 brings its own clean runs (just before and after it); older runs lack them.
    hol_clean = _get(details, "hol", "clean_per_s") or delivery
    reads = details.get("scale_reads") or {}
    out: dict[str, Any] = {
        "delivery_per_s": delivery,
        "raw_post_per_s": raw,
        "ratio_to_raw": _ratio(delivery, raw),
        "delivery_backlog_per_s": backlog,
        "backlog_ratio_to_raw": _ratio(backlog, raw),
        "celery_per_s": celery,
        "ratio_to_celery": _ratio(delivery, celery),
    }
    for rate in (200, 1000):
        for p in (50, 95, 99):
            out[f"latency_{rate}_p{p}_ms"] = _get(details, f"latency_{rate}", f"p{p}_ms")
    out |= {
        "hol_kept_fraction": _ratio(hol, hol_clean),
        "ordered_delivery_per_s": _get(details, "ordered", "per_s"),
        "ordered_to_unordered": _ratio(
            _get(details, "ordered", "per_s"), _get(details, "ordered", "unordered_per_s")
        ),
        "fanout_matcher_events_per_s": _get(details, "fanout_matcher", "matched_events_per_s"),
        "fanout_service_events_per_s": _get(details, "fanout_service", "events_per_s"),
        "fanout_service_2_replicas_events_per_s": _get(
            details, "fanout_service_2_replicas", "events_per_s"
        ),
        "fanout_rss_mb": _get(details, "fanout_service", "rss_mb"),
        "workflow_exec_per_s": _get(details, "workflows", "exec_per_s"),
        "workflow_p50_ms": _get(details, "workflows", "warm_p50_ms"),
        "workflow_p99_ms": _get(details, "workflows", "warm_p99_ms"),
        "workflow_cold_start_ms": _get(details, "workflows", "cold_p50_ms"),
        "workflow_cold_start_back_to_back_ms": _get(
            details, "workflows", "cold_back_to_back_p50_ms"
        ),
        "registry_get_p50_ms": _get(details, "registry_get", "p50_ms"),
        "registry_get_p99_ms": _get(details, "registry_get", "p99_ms"),
        "registry_create_per_s": _get(details, "registry_create", "per_s"),
        "scale_deliveries_failed_p50_ms": _get(reads, "deliveries_failed", "p50_ms"),
        "scale_deliveries_failed_p99_ms": _get(reads, "deliveries_failed", "p99_ms"),
        "scale_deliveries_failed_deep_p99_ms": _get(reads, "deliveries_failed_deep", "p99_ms"),
        "scale_events_p50_ms": _get(reads, "events", "p50_ms"),
        "scale_events_p99_ms": _get(reads, "events", "p99_ms"),
        "scale_events_deep_p99_ms": _get(reads, "events_deep", "p99_ms"),
        "scale_recovery_kept_fraction": _get(details, "scale_recovery", "kept_fraction"),
        "scale_recovery_s": _get(details, "scale_recovery", "recovery_s"),
        "scale_retention_day_s": _get(details, "scale_retention", "seconds"),
        "soak_rss_growth_mb_per_min": _get(details, "soak", "service_growth_mb_per_min"),
        "cores": cores,
        "commit": commit,
    }
    assert tuple(out) == KEYS
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value[:12]
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _target(key: str, value: Any) -> tuple[str, str]:
    if key not in TARGETS:
        return "", ""
    at_least, bound = TARGETS[key]
    text = f"{'≥' if at_least else '≤'} {_fmt(bound)}"
    if value is None:
        return text, ""
    met = value >= bound if at_least else value <= bound
    return text, "met" if met else "MISSED"


def table(result: dict[str, Any], details: dict) -> str:
    rows: list[tuple[str, str, str, str]] = [("figure", "value", "target", "")]
    for key in KEYS:
        target, verdict = _target(key, result[key])
        rows.append((key, _fmt(result[key]), target, verdict))
    rows.append(("", "", "", ""))
    rows.extend(_extra_rows(details))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        line = (
            f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}"
        ).rstrip()
        lines.append(line)
        if n == 0:
            lines.append("-" * (sum(widths) + 6))
    return "\n".join(lines)


def p50_by_slice(series: list[list[float]], width_s: float) -> list[float]:
    """The median latency of each `width_s` slice of part 4's window, in order, from its
    (seconds since the window opened, ms) samples; a slice without samples is left out."""
    slices: dict[int, list[float]] = {}
    for t, ms in series:
        if t >= 0:
            slices.setdefault(int(t // width_s), []).append(ms)
    return [statistics.median(slices[k]) for k in sorted(slices)]


def _per(cpu_percent: float, per_s: float, what: str) -> str:
    """% of a core at `per_s` a second, as the CPU time of one (100 % = 10,000 µs a second)."""
    return f"{10_000 * cpu_percent / per_s:.0f} µs a {what}" if per_s else ""


def _extra_rows(details: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, value: Any, note: str = "") -> None:
        rows.append((label, _fmt(value) if not isinstance(value, str) else value, note, ""))

    delivery = details.get("delivery") or {}
    if delivery.get("per_s") is not None:
        add("(1) reached receiver /s", delivery.get("received_per_s"), "in the window")
        add(
            "(1) success in PG /s",
            delivery.get("pg_success_attempted_in_window_per_s"),
            "attempt started in the window",
        )
        cpu = dict(delivery.get("cpu_percent") or {})
        other = cpu.pop("other processes", None)
        for name, used in sorted(cpu.items(), key=lambda item: -item[1]):
            add(f"(1) CPU % {name}", used, _per(used, delivery["per_s"], "delivery"))
        total = sum(cpu.values())
        add(
            "(1) CPU % all of the above",
            total,
            f"of {100 * (os.cpu_count() or 1)}; {_per(total, delivery['per_s'], 'delivery')}",
        )
        add("(1) CPU % other processes", other, "not started by the bench")
    backlog = details.get("delivery_backlog") or {}
    if backlog.get("per_s") is not None:
        cpu = dict(backlog.get("cpu_percent") or {})
        for name in ("delivery_backlog", "postgres", "broker", "receiver"):
            if name in cpu:
                add(
                    f"(1) backlog: CPU % {name}",
                    cpu[name],
                    _per(cpu[name], backlog["per_s"], "delivery"),
                )
    raw = details.get("raw") or {}
    if raw.get("per_s") is not None:
        cpu = dict(raw.get("cpu_percent") or {})
        for name in ("bench (publisher/client)", "receiver"):
            if name in cpu:
                add(f"(2) CPU % {name}", cpu[name], _per(cpu[name], raw["per_s"], "POST"))
    hol = details.get("hol") or {}
    if hol.get("per_s") is not None:
        add("(5) healthy deliveries/s", hol["per_s"], "with 10 hanging webhooks")
        if hol.get("clean_per_s") is not None:
            add("(5) clean deliveries/s", hol["clean_per_s"], "mean of the runs before, after")
            add(
                "(5) kept vs the run before alone",
                hol["per_s"] / hol["clean_before_per_s"],
                "a lower bound: the broker slows meanwhile",
            )
    ordered = details.get("ordered") or {}
    if ordered.get("per_s") is not None:
        add("(10) unordered deliveries/s", ordered.get("unordered_per_s"), "the run just before")
        cpu = dict(ordered.get("cpu_percent") or {})
        for name in ("delivery", "postgres"):
            if name in cpu:
                add(f"(10) CPU % {name}", cpu[name], "100 = one core")
    broker = details.get("broker") or {}
    for case, found in (broker.get("cases") or {}).items():
        batches = found.get("batches_read")
        add(
            f"(12) broker alone, {case}: CPU %",
            found.get("broker_cpu_percent"),
            f"by {broker.get('slice_s', 0):.0f}-s slice "
            + " → ".join(_fmt(x) for x in found.get("broker_cpu_percent_by_slice") or [])
            + (f"; {batches:,} batches read" if batches is not None else ""),
        )
    celery = details.get("celery") or {}
    if celery.get("settings"):
        add("(3) Celery worker", str(celery["settings"]))
    if celery.get("error"):
        add("(3) Celery", str(celery["error"])[:60])
    for rate in (200, 1000):
        lat = details.get(f"latency_{rate}") or {}
        if lat.get("samples") is not None:
            add(
                f"(4) {rate}/s samples",
                f"{lat['samples']:,} of ~{lat.get('sent_in_window', 0):,}",
                f"publish rate reached {lat.get('achieved_publish_rate', 0):,.0f}/s",
            )
            medians = p50_by_slice(lat.get("series") or [], LATENCY_SLICE_S)
            if len(medians) > 1:
                add(
                    f"(4) {rate}/s p50 ms by {LATENCY_SLICE_S:.0f}-s slice",
                    " → ".join(_fmt(m) for m in medians),
                    "at a steady rate, a climb is the dev broker's fetches getting dearer",
                )
            cpu = lat.get("cpu_percent") or {}
            if "broker" in cpu:
                add(
                    f"(4) {rate}/s CPU % broker",
                    cpu["broker"],
                    ", ".join(
                        f"{name} {cpu[name]:.0f}"
                        for name in ("delivery", "fanout", "postgres", "workflow_runner")
                        if name in cpu
                    ),
                )
    matcher = details.get("fanout_matcher") or {}
    if matcher:
        add("(6) matcher match() calls/s", matcher.get("match_calls_per_s"))
        add("(6) matcher route() events/s", matcher.get("route_events_per_s"), "parse+match+render")
        add(
            "(6) matcher index RSS MB",
            matcher.get("rss_after_mb", 0) - matcher.get("rss_before_mb", 0),
            "growth of its own process",
        )
    service = details.get("fanout_service") or {}
    if service:
        add("(6) service delivery requests/s", service.get("delivery_requests_per_s"))
        add("(6) service index load s", service.get("index_load_s"))
        add("(6) service CPU %", service.get("cpu_percent"))
    registry = details.get("registry_get") or {}
    if registry:
        add("(8) GET list rate reached /s", registry.get("achieved_rate"))
        if registry.get("errors"):
            add("(8) GET list errors", registry["errors"], "non-200 or no answer within 10 s")
    rows.extend(_scale_rows(details))
    soak = details.get("soak") or {}
    if soak.get("published") is not None:
        for name, growth in soak["growth_mb_per_min"].items():
            add(
                f"(11) RSS {name} MB",
                f"{soak['rss_first_mb'][name]:.0f} → {soak['rss_last_mb'][name]:.0f}",
                f"{growth:+.2f} MB/min over the second half" if growth is not None else "",
            )
        add(
            "(11) deliveries, runs",
            ", ".join(f"{k} {v:,}" for k, v in soak["deliveries"].items()),
            "runs "
            + ", ".join(f"{k} {v:,}" for k, v in soak["runs"].items())
            + f" (of {soak['published']:,} events)",
        )
        left, expected = soak["unfinished"], soak["expected"]
        add(
            "(11) unfinished",
            f"{left['deliveries']:,} + {left['runs']:,}",
            f"deliveries of {expected['deliveries']:,}, runs of {expected['runs']:,}, after"
            f" {soak['drain_s']:.0f} s of draining; order heads left {soak['order_heads_left']:,}",
        )
        if left["deliveries"] or left["runs"]:
            add(
                "WARNING soak fell behind",
                "",
                "its memory slopes partly measure a growing backlog, not a steady state",
            )
    for row in machine_rows(details.get("machine_speed") or {}):
        add(*row)
    postgres = details.get("postgres") or {}
    if postgres:
        add("Postgres", "", ", ".join(f"{k} {v}" for k, v in postgres.items()))
        stand_in = details.get("autovacuum_stand_in")
        if stand_in:
            add(
                "autovacuum off: the bench's stand-in",
                f"{stand_in['busy_s']:.0f} s",
                f"{stand_in['vacuums']} VACUUM, {stand_in['analyzes']} ANALYZE of tables past"
                f" autovacuum's thresholds, in {stand_in['rounds']} rounds"
                + (f"; {len(stand_in['errors'])} failed" if stand_in.get("errors") else ""),
            )
    for part, info in details.items():
        if isinstance(info, dict) and info.get("error") and part != "celery":
            add(f"{part} FAILED", str(info["error"])[:60])
        other = (info.get("cpu_percent") or {}) if isinstance(info, dict) else {}
        if isinstance(other, dict) and other.get("other processes", 0) > BUSY_ELSEWHERE:
            add(
                f"WARNING {part}",
                f"{other['other processes']:.0f} %",
                "CPU used by processes the bench did not start: figures skewed",
            )
    return rows


def _scale_rows(details: dict) -> list[tuple[str, str, str, str]]:
    seeded = details.get("scale_seed") or {}
    if not seeded:
        return []
    rows = [
        (
            "(9) seeded",
            f"{seeded['deliveries']:,} deliveries, {seeded['events']:,} events",
            f"{seeded['failed']:,} failed; {seeded['seed_s']:.0f} s",
            "",
        )
    ]
    recovery = details.get("scale_recovery") or {}
    if recovery:
        rows.append(
            (
                "(9) recovery",
                f"{recovery['recovery_done']:,} of {recovery['recovery_total']:,}",
                f"{recovery['recovery_status']} in {recovery['recovery_s']:.0f} s,"
                f" {recovery['recovering_runs']} healthy runs meanwhile",
                "",
            )
        )
        rows.append(
            (
                "(9) healthy /s before, during, after",
                f"{recovery['clean_before_per_s']:,.0f}, {recovery['per_s']:,.0f},"
                f" {recovery['clean_after_per_s']:,.0f}",
                "",
                "",
            )
        )
        rows.append(
            (
                "(9) healthy success /s over the job",
                _fmt(recovery["healthy_success_per_s_while_recovering"]),
                "Postgres, order to done, warm-ups and drains included",
                "",
            )
        )
    retention = details.get("scale_retention") or {}
    if retention:
        rows.append(
            (
                "(9) retention's day",
                f"{retention['deliveries']:,} deliveries, {retention['attempts']:,} attempts",
                f"filled in {retention['fill_s']:.0f} s; {retention['note'] or 'dropped whole'}",
                "",
            )
        )
    return rows


def write(out_dir: Path, result: dict[str, Any], details: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "details.json").write_text(json.dumps(details, indent=2, default=str) + "\n")


def plot_latency(path: Path, details: dict) -> bool:
    """latency.png: p50/p95/p99 per publish rate, and each sample over time. False: no data."""
    runs = {rate: details.get(f"latency_{rate}") or {} for rate in (200, 1000)}
    runs = {rate: r for rate, r in runs.items() if r.get("p50_ms") is not None}
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.25
    for i, p in enumerate((50, 95, 99)):
        xs = [n + (i - 1) * width for n in range(len(runs))]
        values = [r[f"p{p}_ms"] for r in runs.values()]
        drawn = bars.bar(xs, values, width, label=f"p{p}")
        bars.bar_label(drawn, fmt="%.0f", fontsize=8)
    bars.set_xticks(range(len(runs)), [f"{rate:,}/s" for rate in runs])
    bars.set_ylabel("publish to receipt (ms)")
    bars.set_title("Latency percentiles")
    if 200 in runs:
        bars.axhline(50, color="grey", linestyle=":", linewidth=1, label="target p95 at 200/s")
    if 1000 in runs:
        bars.axhline(150, color="black", linestyle="--", linewidth=1, label="target p99 at 1,000/s")
    bars.legend(fontsize=8)
    for rate, run in runs.items():
        series = run.get("series") or []
        if series:
            scatter.scatter(
                [s[0] for s in series], [s[1] for s in series], s=2, label=f"{rate:,}/s"
            )
    scatter.set_yscale("log")
    scatter.set_xlabel("seconds since the measured window opened (warm-up < 0)")
    scatter.set_ylabel("ms (log)")
    scatter.set_title("Each delivery")
    scatter.legend(markerscale=5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def profile_table(profile: dict[str, dict], top: int = 8) -> str:
    """One part's py-spy summary: per service, where its samples were (self, by leaf frame)."""
    lines = ["py-spy, % of each service's samples in the window (self = leaf frame)"]
    for service, summary in profile.items():
        lines.append(f"  {service} ({summary['samples']:,} samples)")
        lines.append("    self:")
        for frame, share in summary["self"][:top]:
            lines.append(f"    {share:5.1f} %  {frame}")
        lines.append("    total (on the stack):")
        for frame, share in summary["total"][:top]:
            lines.append(f"    {share:5.1f} %  {frame}")
        files = ", ".join(f"{name} {share:.0f} %" for name, share in summary["self_by_file"][:6])
        lines.append(f"    by file: {files}")
    return "\n".join(lines)


def machine_rows(speed: dict) -> list[tuple[str, str, str]]:
    """The rows of details' `machine_speed` ({"before": a reading, "parts": {part: a
    reading}}, machine_speed.py): each gauge before the run, then the least and most of the
    parts' readings."""
    before = speed.get("before") or {}
    parts = list((speed.get("parts") or {}).values())
    rows = []
    for gauge in machine_speed.GAUGES:
        if gauge.key not in before:
            continue
        seen = [part[gauge.key] for part in parts if gauge.key in part]
        digits = 2 if gauge.unit == "s" else 1
        between = f" → {min(seen):.{digits}f}-{max(seen):.{digits}f}" if seen else ""
        value = f"{before[gauge.key]:.{digits}f}{between} {gauge.unit}"
        rows.append((f"machine: {gauge.label}", value, gauge.what))
    if rows:
        label, value, what = rows[-1]
        rows[-1] = (label, value, f"{what}; each before anything started, then before each"
                    " part: compare runs whose gauges read alike")  # fmt: skip
    return rows
