"""`python -m tests.chaos` (`make chaos`, `make chaos SCENARIO=crashes`): every fault scenario
(tests/chaos/README.md), a table, and `.roomhooks/chaos/results.json`.

Scenarios that inject faults into the running platform (crashes, replicas, restarts, poison,
the sandbox attack, hostile endpoints and tenants) run here in full; those that are a matrix
of requests (fuzzing, tenancy, SSRF, secrets, supervision) run their pytest module, with more
examples where it has a knob.
The short versions of all of them run in `make test`. Exit code 1 when any scenario failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from shared.logging import configure_logging
from shared.settings import RuntimeSettings
from tests.bench.progress import Progress
from tests.chaos import (
    hostile_endpoints,
    hostile_tenants,
    ordered_faults,
    outage_faults,
    pipeline_faults,
)
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.pipeline_faults import Setup
from tests.support.processes import REPO
from tests.support.services import LOCAL_POSTGRES

Scenario = Callable[[Setup, bool], Awaitable[ScenarioOutcome]]


def pytest_scenario(name: str, *targets: str, **env: str) -> Scenario:
    """A scenario that is a pytest module: passed when every test in it passed."""

    async def run(setup: Setup, short: bool) -> ScenarioOutcome:
        outcome = ScenarioOutcome(name)
        setup.progress(f"pytest {' '.join(targets)}")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *targets,
            cwd=REPO,
            env=os.environ | ({} if short else env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        text = output.decode(errors="replace")
        (setup.state_dir / f"{name.replace(' ', '-')}.log").write_text(text)
        summary = next((ln for ln in reversed(text.splitlines()) if " in " in ln), "")
        outcome.details |= {"pytest": summary.strip("= "), "seconds": time.monotonic() - started}
        outcome.check(proc.returncode == 0, f"pytest exited {proc.returncode}: {summary}")
        return outcome

    return run


def _sandbox_attack() -> Scenario:
    """In a Python process of its own (see `sandbox_attack.main`); its log lines go to ours."""

    async def run(setup: Setup, short: bool) -> ScenarioOutcome:
        from tests.chaos.sandbox_attack import NAME, OUTCOME_FILE  # the runner's sandbox: heavy

        work_dir = setup.state_dir / "sandbox"
        (work_dir / OUTCOME_FILE).unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.chaos.sandbox_attack", str(work_dir),
            "--postgres", setup.server_url, *(["--short"] if short else []), cwd=REPO,
        )  # fmt: skip
        await proc.wait()
        try:
            fields = json.loads((work_dir / OUTCOME_FILE).read_text())
        except FileNotFoundError:
            return ScenarioOutcome(NAME, failures=[f"the scenario exited {proc.returncode}"])
        fields.pop("passed")
        return ScenarioOutcome(**fields)

    return run


def _faults(scenario: Callable[..., Awaitable[ScenarioOutcome]]) -> Scenario:
    async def run(setup: Setup, short: bool) -> ScenarioOutcome:
        return await scenario(setup, short=short)

    return run


# The faults to the pipeline first, then the request matrices, then the hostile inputs.
SCENARIOS: dict[str, Scenario] = {
    "supervision": pytest_scenario(
        "supervision", "tests/integration/test_devstack.py::test_restarts_a_service_that_dies"
    ),
    "crashes": _faults(pipeline_faults.crashes),
    "replicas": _faults(pipeline_faults.replicas),
    "postgres": _faults(outage_faults.postgres_restart),
    "broker": _faults(outage_faults.broker_restart),
    "poison": _faults(pipeline_faults.poison),
    "ordered": _faults(ordered_faults.ordered),
    "fuzz": pytest_scenario(
        "api fuzzing", "tests/integration/test_registry_fuzz.py", ROOMHOOKS_FUZZ_EXAMPLES="200"
    ),
    "tenancy": pytest_scenario("tenancy", "tests/integration/test_tenancy.py"),
    "ssrf": pytest_scenario("ssrf", "tests/integration/test_ssrf.py"),
    "secrets": pytest_scenario(
        "secrets",
        "tests/integration/test_secrets_scan.py",
        "tests/integration/test_secrets_at_rest.py",
    ),
    "sandbox": _sandbox_attack(),
    "hostile-endpoints": _faults(hostile_endpoints.run),
    "hostile-tenants": _faults(hostile_tenants.run),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--scenario",
        default="all",
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--short", action="store_true", help="the short versions (as in CI)")
    parser.add_argument("--postgres", default=LOCAL_POSTGRES)
    parser.add_argument("--out", type=Path, default=REPO / ".roomhooks" / "chaos")
    args = parser.parse_args(argv)
    wanted = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    args.scenarios = [s for s in SCENARIOS if s in wanted]
    return args


async def run_all(args: argparse.Namespace, progress: Progress) -> list[ScenarioOutcome]:
    outcomes = []
    for key in args.scenarios:
        progress.part(key)
        setup = Setup(args.out / key, args.postgres, progress)
        setup.state_dir.mkdir(parents=True, exist_ok=True)
        for old in setup.state_dir.glob("logs/*.log"):
            old.unlink()  # processes append to their log: keep this run's only
        started = time.monotonic()
        try:
            outcome = await SCENARIOS[key](setup, args.short)
        except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a failed row
            outcome = ScenarioOutcome(key, failures=[f"{type(exc).__name__}: {exc}"])
        outcome.details["wall_s"] = round(time.monotonic() - started, 1)
        progress.done("passed" if outcome.passed else "FAILED: " + "; ".join(outcome.failures))
        outcomes.append(outcome)
    return outcomes


def table(outcomes: list[ScenarioOutcome]) -> str:
    head = ("scenario", "sent", "delivered", "lost", "duplicated", "recovery s", "result")
    rows = [head]
    for o in outcomes:
        rows.append(
            (
                o.name,
                f"{o.sent:,}" if o.sent else "—",
                f"{o.delivered:,}" if o.sent else "—",
                f"{o.lost:,}" if o.sent else "—",
                f"{o.duplicated:,}" if o.sent else "—",
                f"{o.recovery_s:.1f}" if o.recovery_s is not None else "—",
                "pass" if o.passed else "FAIL",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    for o in outcomes:
        for failure in o.failures:
            lines.append(f"{o.name}: {failure}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(RuntimeSettings(log_level="WARNING"), service="chaos")
    # The harness's own pool reconnects after the Postgres scenario's restart, with a traceback.
    logging.getLogger("asyncpg.pool").setLevel(logging.CRITICAL)
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes = asyncio.run(run_all(args, Progress()))
    print()
    print(table(outcomes))
    results = {
        "short": args.short,
        "scenarios": {key: o.as_json() for key, o in zip(args.scenarios, outcomes, strict=True)},
        "passed": all(o.passed for o in outcomes),
    }
    path = args.out / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n{path}")
    return 0 if results["passed"] else 1
