"""`make lint`'s check of the monitoring files: the alert rules parse and their tests pass
(`promtool check rules`, `promtool test rules`), and the Grafana dashboard is well formed with
every panel query valid PromQL (promtool parses them as recording rules).

Which metric names the services export is checked by tests/unit/test_monitoring_names.py.
Needs promtool (Debian's `prometheus` package: `make lint` installs it when missing).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALERTS, ALERT_TESTS = HERE / "alerts.yml", HERE / "alerts_test.yml"
DASHBOARD = HERE / "grafana-dashboard.json"
# Grafana's own variables, given a value PromQL accepts before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard_problems(dashboard: dict) -> list[str]:
    problems: list[str] = []
    ids = [panel.get("id") for panel in dashboard.get("panels", [])]
    if not ids:
        problems.append("the dashboard has no panels")
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids repeat: {ids}")
    for panel in dashboard.get("panels", []):
        title = panel.get("title") or f"panel {panel.get('id')}"
        if not panel.get("targets"):
            problems.append(f"{title}: no query")
        if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
            problems.append(f"{title}: gridPos needs h, w, x and y")
        for target in panel.get("targets", []):
            if not target.get("expr"):
                problems.append(f"{title}: a target without expr")
    return problems


def panel_queries(dashboard: dict) -> list[str]:
    queries = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries


def as_recording_rules(queries: list[str]) -> str:
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for n, query in enumerate(queries):
        lines += [f"      - record: dashboard_query_{n}", f"        expr: {json.dumps(query)}"]
    return "\n".join(lines) + "\n"


def promtool(*args: str) -> bool:
    command = [shutil.which("promtool") or "promtool", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
    return done.returncode == 0


def main() -> int:
    if shutil.which("promtool") is None:
        print("promtool is missing: apt-get install prometheus (make lint does)", file=sys.stderr)
        return 1
    ok = promtool("check", "rules", str(ALERTS)) and promtool("test", "rules", str(ALERT_TESTS))
    dashboard = json.loads(DASHBOARD.read_text())
    for problem in dashboard_problems(dashboard):
        print(f"{DASHBOARD.name}: {problem}", file=sys.stderr)
        ok = False
    queries = panel_queries(dashboard)
    leftover = [q for q in queries if re.search(r"\$\w+", q)]
    for query in leftover:
        print(f"{DASHBOARD.name}: a variable PromQL cannot read in {query!r}", file=sys.stderr)
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as rules:
        rules.write(as_recording_rules(queries))
        rules.flush()
        ok = promtool("check", "rules", rules.name) and ok and not leftover
    if ok:
        print("monitoring: the alert rules, their tests and the dashboard's queries check out")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
