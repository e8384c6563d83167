"""An account with real resources of every kind: a webhook, a workflow, a delivery with an
attempt, an execution and the event they came from in the event log, a recovery job and an API
key, written by the same code paths the services use.

The tenancy and fuzzing tests aim their requests at these ids, so a 403/404 they see is the
registry refusing a real resource, not a typo in the test.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import ClientSession

from services.delivery import repository as delivery_store
from services.fanout.event_log import LoggedEvent, logged_id
from services.fanout.repository import PostgresEventLog
from services.workflow_runner import executions
from shared.messages import WorkflowRunRequested, run_id_for
from tests.support.deliveries import delivery_request

WORKFLOW_CODE = (
    "export default async function(event, { room }) {\n"
    "  console.log('seen ' + event.id);\n"
    "  return { seen: event.id };\n"
    "}"
)
# Every path parameter of the registry's routes: Seeded.path_values has a value for each.
PATH_PARAMETERS = frozenset(
    {
        "account_id",
        "webhook_id",
        "delivery_id",
        "workflow_id",
        "execution_id",
        "event_id",
        "job_id",
        "key_id",
        "version",
    }
)


@dataclass(frozen=True)
class Seeded:
    """One account's resources; `secrets` holds every value another tenant must never see."""

    account_id: str
    webhook: dict[str, Any]  # as the 201 answered it, with the secret
    workflow: dict[str, Any]
    delivery_id: str
    event_id: str
    execution_id: str
    marker: str  # unique text inside the payload, the answer body, the result and the logs
    job_id: str  # a recovery of the webhook's failed deliveries
    api_key: dict[str, Any]  # a MEMBER key, as the 201 answered it, with the key

    @property
    def path_values(self) -> dict[str, str]:
        """A value for every path parameter the registry's routes take."""
        return {
            "account_id": self.account_id,
            "webhook_id": self.webhook["id"],
            "delivery_id": self.delivery_id,
            "workflow_id": self.workflow["id"],
            "execution_id": self.execution_id,
            "event_id": self.event_id,
            "job_id": self.job_id,
            "key_id": self.api_key["id"],
            "version": str(self.workflow["version"]),
        }

    @property
    def secrets(self) -> list[str]:
        # A version number is no secret: every account's first version is 1.
        ids = [v for k, v in self.path_values.items() if k != "version"]
        return [
            *ids,
            self.webhook["url"],
            self.webhook["name"],
            self.webhook["secret"],
            self.workflow["name"],
            self.event_id,
            self.marker,
            self.api_key["key"],
            self.api_key["label"],
        ]


async def seed_account(registry: Any, pool: asyncpg.Pool, account: Any) -> Seeded:
    """Resources for `account` (tests/integration/conftest.py's Account) through `registry`."""
    http, account_id = registry.http, account.id
    marker = f"tenant-{uuid.uuid4().hex[:12]}"
    auth = {"Authorization": f"Bearer {account.owner}"}
    base = f"{registry.url}/v1/accounts/{account_id}"
    webhook = await _created(
        http,
        f"{base}/webhooks",
        auth,
        {
            "url": f"https://{marker}.example.com/hook",
            "events": ["participant.joined"],
            "name": f"hook of {marker}",
        },
        "webhook",
    )
    workflow = await _created(
        http,
        f"{base}/workflows",
        auth,
        {"name": f"flow of {marker}", "events": ["participant.joined"], "code": WORKFLOW_CODE},
        "workflow",
    )
    event_id = f"evt-{marker}"
    event = {"id": event_id, "event": "participant.joined", "data": {"note": marker}}
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        delivery_id = await _delivery(conn, webhook, event_id, event, now)
        execution_id = await _execution(conn, workflow, event_id, event, now)
    await _logged(pool, account_id, webhook, workflow, event, now)
    recover = {"since": "2020-01-01T00:00:00Z"}
    recovered = await http.post(
        f"{base}/webhooks/{webhook['id']}/recover", json=recover, headers=auth
    )
    assert recovered.status == 202, await recovered.text()
    job_id = (await recovered.json())["data"]["job"]["id"]
    api_key = await _created(
        http, f"{base}/api-keys", auth, {"role": "MEMBER", "label": f"key of {marker}"}, "api_key"
    )
    return Seeded(
        account_id, webhook, workflow, delivery_id, event_id, execution_id, marker, job_id, api_key
    )


async def _created(
    http: ClientSession, url: str, auth: dict[str, str], body: dict[str, Any], kind: str
) -> dict[str, Any]:
    resp = await http.post(url, json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"][kind]


async def _logged(
    pool: asyncpg.Pool, account_id: str, webhook: dict, workflow: dict, event: dict, now: datetime
) -> None:
    """The event in the account's event log, as fanout records it, reaching both."""
    organization_id = uuid.UUID(account_id)
    entry = LoggedEvent(
        id=logged_id(organization_id, event["id"]),
        organization_id=organization_id,
        event_id=event["id"],
        event=event["event"],
        room_id=None,
        status="accepted",
        reason=None,
        payload=json.dumps(event, separators=(",", ":")),
        webhook_ids=(uuid.UUID(webhook["id"]),),
        workflow_ids=(uuid.UUID(workflow["id"]),),
        received_at=now,
    )
    await PostgresEventLog(pool).record([entry])


async def _delivery(
    conn: asyncpg.Connection, webhook: dict, event_id: str, event: dict, now: datetime
) -> str:
    """A delivery as the delivery service stores it, with one failed attempt recorded."""
    request = delivery_request(
        webhook,
        event_id,
        body=json.dumps(event, separators=(",", ":")),
        event=event["event"],
        created_at=now,
    )
    [job] = await delivery_store.insert_requested(
        conn, [request], now=now, lease_until=now + timedelta(seconds=60)
    )
    attempt = delivery_store.AttemptRow(
        delivery_id=job.id,
        delivery_created_at=job.created_at,
        attempt=1,
        started_at=now,
        duration_ms=12,
        status_code=500,
        error="HTTP 500",
        response_body=f"receiver said no to {event['data']['note']}",
        status="pending",
        next_attempt_at=now + timedelta(hours=1),
    )
    assert await delivery_store.record_attempts(conn, [attempt], now=now) == 1
    return request.delivery_id


async def _execution(
    conn: asyncpg.Connection, workflow: dict, event_id: str, event: dict, now: datetime
) -> str:
    """An execution as the workflow runner records it: begun, then finished."""
    run = WorkflowRunRequested(
        run_id=run_id_for(workflow["id"], event_id),
        workflow_id=workflow["id"],
        version=workflow["version"],
        organization_id=workflow["organization_id"],
        room_id=None,
        event_id=event_id,
        event=event,
        created_at=now,
    )
    assert await executions.begin(conn, run, now=now)
    await executions.finish(
        conn,
        run,
        status="success",
        started_at=now,
        duration_ms=7,
        result={"seen": event_id},
        error=None,
        logs=[{"level": "log", "message": f"seen {event['data']['note']}"}],
        now=now,
    )
    return run.run_id
