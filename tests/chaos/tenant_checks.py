"""The hostile-tenants scenario's checks, once the attack is over (hostile_tenants.py): the victims'
runs all `success` and the attacker's final, each run run once; each bad message once in its topic's
DLQ naming what is wrong (or, where allowed, delivered instead); each bad request a 4xx in the
envelope naming its field; the quotas a 4xx; the flood 429s with `Retry-After`, another key's
requests unharmed. Pure: each broken promise is a sentence in `outcome.failures`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from shared.kafka import Topics
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.tenant_inputs import HOSTILE_WORKFLOWS, BadMessage

FINAL_RUN = ("success", "error", "timeout")


def judge_runs(
    outcome: ScenarioOutcome,
    runs: dict[str, dict[str, Any]],
    victim_runs: list[str],
    attacker_runs: dict[str, str],
) -> None:
    ends = {w.name: w.ends for w in HOSTILE_WORKFLOWS}
    victim = Counter((runs.get(r) or {}).get("status", "missing") for r in victim_runs)
    outcome.details["victim_runs"] = dict(victim)
    recorded = outcome.details.get("runs_recorded", {})
    outcome.check(
        recorded.get("finished") == recorded.get("rows"),
        f"the runner finished {recorded.get('finished')} executions for {recorded.get('rows')}"
        " final rows: some run was run again",
    )
    outcome.check(bool(victim_runs), "the victim's workflow had no run: nothing was tested")
    outcome.check(
        victim.get("success", 0) == len(victim_runs),
        f"{len(victim_runs) - victim.get('success', 0)} of the victim's {len(victim_runs)} runs"
        f" did not succeed: {dict(victim)}",
    )
    by_name: dict[str, dict[str, Any]] = {}
    for run_id, name in attacker_runs.items():
        row = runs.get(run_id) or {"status": "missing"}
        seen = by_name.setdefault(name, {"statuses": Counter(), "sample": None})
        seen["statuses"][row["status"]] += 1
        if seen["sample"] is None:
            seen["sample"] = {
                k: row.get(k)
                for k in ("status", "result", "error", "logs", "result_chars", "logs_chars")
            }
        expected, wrong = ends[name], seen.setdefault("wrong", [])
        if row["status"] not in FINAL_RUN:
            wrong.append(f"a run is {row['status']}")
        elif expected is not None and row["status"] != expected:
            wrong.append(f"a run ended {row['status']}, expected {expected}: {row.get('error')}")
        elif row["status"] == "error" and not row.get("error"):
            wrong.append("a run failed without a reason")
    for name, seen in by_name.items():
        if seen.get("wrong"):
            examples = sorted(set(seen["wrong"]))[:3]
            outcome.failures.append(f"workflow {name!r}: {len(seen['wrong'])} wrong: {examples}")
    outcome.details["attacker_runs"] = {
        n: {"statuses": dict(s["statuses"]), "sample": s["sample"]} for n, s in by_name.items()
    }
    outcome.sent += len(victim_runs) + len(attacker_runs)
    final = sum(
        1 for r in [*victim_runs, *attacker_runs] if (runs.get(r) or {}).get("status") in FINAL_RUN
    )
    outcome.delivered += final
    outcome.lost += len(victim_runs) + len(attacker_runs) - final


def judge_letters(
    outcome: ScenarioOutcome,
    topics: Topics,
    sent: dict[str, BadMessage],
    letters: dict[str, list[tuple[str, str, str]]],
    delivered: dict[str, str],
) -> None:
    problems: dict[str, list[str]] = {}
    samples: dict[str, str] = {}
    for key, message in sent.items():
        wrong = problems.setdefault(message.kind, [])
        source = getattr(topics, message.topic)
        found = letters.get(key, [])
        if message.may_deliver and not found:
            status = delivered.get(key)
            samples.setdefault(message.kind, f"delivered: {status}")
            if status != "success":
                wrong.append(f"neither dead-lettered nor delivered (delivery: {status})")
            continue
        if not found:
            wrong.append("not in the DLQ")
            continue
        dlq, reason, origin = found[0]
        samples.setdefault(message.kind, reason[:200])
        if len(found) > 1:
            wrong.append(f"dead-lettered {len(found)} times")
        if dlq != topics.dlq_of(source) or origin != source:
            wrong.append(f"in {dlq} from {origin!r}, expected {topics.dlq_of(source)}")
        if not reason:
            wrong.append("no reason")
        elif message.reasons and not any(r in reason.lower() for r in message.reasons):
            wrong.append(f"reason {reason[:100]!r} names none of {message.reasons}")
        if message.may_deliver and key in delivered:
            wrong.append("dead-lettered and delivered too")
    failed = {kind: w for kind, w in problems.items() if w}
    outcome.details["bad_messages"] = {
        "sent": len(sent),
        "right": sum(1 for m in sent.values() if not problems.get(m.kind)),
        "sample_reasons": samples,
    }
    outcome.sent += len(sent)
    wrong_keys = sum(len(w) for w in failed.values())
    outcome.delivered += len(sent) - min(len(sent), wrong_keys)
    for kind, wrong in failed.items():
        outcome.failures.append(f"{kind}: {len(wrong)} wrong: {sorted(set(wrong))[:3]}")


def judge_api(outcome: ScenarioOutcome, api_answers: dict[str, Any]) -> None:
    outcome.details["api"] = api_answers
    for name, answer in api_answers["probes"].items():
        status, error, field_name = answer["status"], answer["error"], answer["field"]
        if not 400 <= status < 500 or status == 429:
            outcome.failures.append(f"API {name}: answered {status}, not a 4xx refusal")
        elif error is None:
            outcome.failures.append(f"API {name}: {status} without the error envelope")
        elif field_name and field_name not in json.dumps(error):
            outcome.failures.append(f"API {name}: the error does not name {field_name!r}")
    for what in ("webhook_over_quota", "workflow_over_quota"):
        answer = api_answers[what]
        outcome.check(
            400 <= answer["status"] < 500 and answer["status"] != 429 and answer["error"],
            f"{what.replace('_', ' ')}: answered {answer['status']} {answer['error']}",
        )
    rate = outcome.details.get("api_rate", {})
    statuses = rate.get("attacker_statuses", {})
    outcome.check(
        statuses.get(429, 0) > 0,
        f"{rate.get('requests')} requests at once on one key got no 429: {statuses}",
    )
    outcome.check(
        set(statuses) <= {200, 429}, f"the flood got answers other than 200 and 429: {statuses}"
    )
    outcome.check(
        rate.get("refused_without_retry_after", 1) == 0
        and rate.get("refused_without_envelope", 1) == 0,
        f"429s without Retry-After or the envelope: {rate.get('sample_429')}",
    )
    outcome.check(
        rate.get("victim_statuses") == {200: 5},
        f"another account's requests during the flood: {rate.get('victim_statuses')}",
    )
