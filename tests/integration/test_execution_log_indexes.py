"""A workflow's executions (`GET .../workflows/{id}/executions`, the registry's statement) are
read from an index in every day's partition, for every status filter, first page and next, and
one execution by its primary key in each.

As test_event_log_indexes.py: Postgres's own plans, for the values and generic, on a log shaped
like a busy workflow's (ANALYZEd) beside many others', spread over days, the oldest in the
default partition; a page names the days the registry keeps (`kept_span`, KEPT).
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from datetime import timedelta

import pytest

from services.registry.workflows.repository import EXECUTION, executions_query
from tests.integration.test_event_log_indexes import (
    DAYS,
    KEPT,
    MAX_SORTED_ROWS,
    T0,
    parent_indexes,
    partitioned,
    partitions_holding_rows,
    plan_nodes,
)
from tests.support.plans import rows_read

pytestmark = pytest.mark.integration

COLUMNS = (  # result, error and logs left to their defaults: COPY has no jsonb encoder
    "id", "workflow_id", "organization_id", "version", "event_id", "event", "status",
    "started_at", "duration_ms", "created_at", "updated_at",
)  # fmt: skip
# Most runs succeed; errors, timeouts and runs under way are the rare ones a filter looks for.
STATUSES = ["success"] * 93 + ["error"] * 5 + ["timeout"] + ["running"]
OTHER_WORKFLOWS = 20
DEFAULT_TIME_INDEX = "executions_default_created_at_idx"


def executions(workflow: uuid.UUID, org: uuid.UUID, count: int, rng: random.Random) -> list:
    """`count` executions of one workflow spread evenly over DAYS days, as the runner records."""
    rows = []
    for n in range(count):
        at = T0 + timedelta(days=DAYS) * n / count
        status = rng.choice(STATUSES)
        rows.append(
            (uuid.uuid4(), workflow, org, 1, f"evt-{n}", "participant.joined", status, at, 3,
             at, at)
        )  # fmt: skip
    return rows


async def fill(pool, workflow: uuid.UUID, count: int) -> None:
    rows = executions(workflow, uuid.uuid4(), count, random.Random(workflow.int))
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "executions", schema_name="workflow", columns=COLUMNS, records=rows
        )


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("cursor", [False, True], ids=["first-page", "next-page"])
async def test_every_status_filter_is_read_from_an_index_in_page_order(pool, cursor, generic):
    busy, small = uuid.uuid4(), uuid.uuid4()
    await partitioned(pool)
    for workflow, count in [(busy, 10_000), (small, 200)]:
        await fill(pool, workflow, count)
    for _ in range(OTHER_WORKFLOWS):
        await fill(pool, uuid.uuid4(), 500)
    await pool.execute("ANALYZE workflow.executions")
    parents = await parent_indexes(pool)
    filled = await partitions_holding_rows(pool, "workflow.executions")
    after = (T0 + timedelta(days=DAYS) * 0.6, uuid.uuid4()) if cursor else None
    problems, used = [], {}
    workflows = {"busy": busy, "small": small}
    for (name, workflow), status in itertools.product(
        workflows.items(), [None, "success", "error", "timeout", "running"]
    ):
        org = await pool.fetchval(
            "SELECT organization_id FROM workflow.executions WHERE workflow_id = $1 LIMIT 1",
            workflow,
        )
        sql, args = executions_query(org, workflow, status=status, limit=51, after=after, kept=KEPT)
        nodes = await plan_nodes(pool, sql, *args, generic=generic, analyze=True)
        kinds = {n["Node Type"] for n in nodes if n.get("Relation Name") in filled}
        indexes = {parents.get(n.get("Index Name")) for n in nodes} - {None}
        used[f"{name}:{status}"] = sorted(indexes)
        read = rows_read(n for n in nodes if "Relation Name" in n)
        if "Seq Scan" in kinds or not indexes or read > MAX_SORTED_ROWS:
            problems.append(f"{name} {status}: {sorted(kinds)} {sorted(indexes)} read {read}")
    print(json.dumps(used, indent=1))
    assert problems == [], "\n".join(problems)
    pages = {key: set(found) - {DEFAULT_TIME_INDEX} for key, found in used.items()}
    assert pages["busy:None"] == {"executions_log_idx"}
    assert pages["busy:timeout"] == {"executions_by_status_idx"}


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
async def test_one_execution_is_found_by_its_primary_key_in_each_partition(pool, generic):
    workflow = uuid.uuid4()
    await partitioned(pool)
    await fill(pool, workflow, 2_000)
    await pool.execute("ANALYZE workflow.executions")
    parents = await parent_indexes(pool)
    filled = await partitions_holding_rows(pool, "workflow.executions")
    nodes = await plan_nodes(pool, EXECUTION, uuid.uuid4(), workflow, uuid.uuid4(), generic=generic)
    assert "Seq Scan" not in {n["Node Type"] for n in nodes if n.get("Relation Name") in filled}
    assert {parents[n["Index Name"]] for n in nodes if "Index Name" in n} == {"executions_pkey"}
