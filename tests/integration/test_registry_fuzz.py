"""The fuzz scenario: schemathesis against the registry's own /openapi.json, with each role's key.

Every operation gets valid and invalid inputs (schemathesis' positive and negative modes), aimed
at real resources of the key's account as well as at ids that do not exist. Every answer must be
no 5xx, a status the document lists for the operation, the content type it names, and a body
that matches its schema; invalid input must be refused with a 4xx.

The examples per operation and mode come from `ROOMHOOKS_FUZZ_EXAMPLES` (default 25: 30-45 s
for the three roles on two cores); a long run is e.g. `ROOMHOOKS_FUZZ_EXAMPLES=500`.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from services.registry.console import is_console_route
from services.registry.policy import Role
from services.registry.settings import RegistrySettings
from tests.support.tenants import Seeded, seed_account

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("ROOMHOOKS_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Deletes go last so the operations before them still find the resources.
METHOD_ORDER = {"get": 0, "head": 0, "post": 1, "put": 2, "patch": 2, "delete": 3}


# A body refused for its size (413) is refused too, whatever else is wrong with it.
CONFIG = {
    "checks": {
        "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "405", "413", "415", "422"]
        }
    }
}
# More requests than any run sends: a fuzzer's key outruns the dev profile's limits (a burst
# of 200, then 100/s; 10 sends per webhook, then 1/s).
UNREACHABLE = 10**9


@pytest.fixture
def registry_settings(postgres_settings, kafka_settings) -> RegistrySettings:
    """The dev profile's without rate limits: a 429 says nothing about the input, yet
    negative_data_rejection counts it as invalid input accepted. The limits have their own
    tests (test_registry_limits.py)."""
    return RegistrySettings(
        postgres=postgres_settings,
        kafka=kafka_settings,
        allowed_http_hosts=None,
        api_rate_per_s=UNREACHABLE,
        api_burst=UNREACHABLE,
        webhook_sends_rate_per_s=UNREACHABLE,
        webhook_sends_burst=UNREACHABLE,
    )


def fuzz(api_url: str, token: str, seeded: Seeded) -> list[str]:
    """Run every operation of the served document; return one report per failing operation."""
    schema = schemathesis.openapi.from_url(
        f"{api_url}/openapi.json", config=schemathesis.Config.from_dict(CONFIG)
    )
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (METHOD_ORDER[op.method.lower()], op.path),
    )
    auth = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                error = _fuzz_operation(operation, mode, auth, seeded, api_url, session)
                if error is not None:
                    failures.append(f"{operation.label} [{mode.value}]: {error}")
    return failures


def _fuzz_operation(operation, mode, auth, seeded, api_url, session) -> str | None:
    names = {p.name for p in operation.path_parameters}
    own = {k: v for k, v in seeded.path_values.items() if k in names}
    # The key's own account always; the other ids either real ones or whatever is generated.
    variants = [own, {k: v for k, v in own.items() if k == "account_id"}]
    cases = st.sampled_from(variants).flatmap(
        lambda path: operation.as_strategy(
            generation_mode=mode, path_parameters=path or None, headers=auth
        )
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=cases)
    def run(case) -> None:
        case.call_and_validate(base_url=api_url, session=session, headers=auth, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # Nothing to negate (an operation whose only inputs are free-form strings): no invalid
        # request exists, so there is nothing to refuse.
        if mode is GenerationMode.NEGATIVE:
            return None
        raise
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every operation's
        return _summary(exc)
    return None


def _summary(exc: BaseException, limit: int = 600) -> str:
    """What failed, without the (possibly huge) request body schemathesis prints."""
    parts = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    return "; ".join(f"{type(e).__name__}: {str(e)[:limit]}" for e in parts)


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_every_operation_answers_as_documented_for_every_role(registry, pool, role):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    token = {Role.OWNER: alice.owner, Role.ADMIN: alice.admin, Role.MEMBER: alice.member}[role]
    failures = await asyncio.to_thread(fuzz, registry.url, token, seeded)
    assert failures == [], "\n\n".join(failures)


async def test_every_served_route_is_in_the_document_so_it_is_fuzzed(registry):
    document = await (await registry.http.get(f"{registry.url}/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    served = {
        (r.method, r.resource.canonical)
        for r in registry.app.router.routes()
        if r.method != "HEAD" and not is_console_route(r)
    }
    assert served == documented


# Regressions: what the fuzzing found, pinned by behaviour.


async def test_the_fuzzer_is_never_rate_limited_so_no_429_is_judged_as_accepted(registry, pool):
    """Found by the fuzzing: once the key's bucket ran dry every request was a 429, which
    negative_data_rejection reported as a schema-violating body accepted (shrunk to random
    bytes). Past the dev profile's limits, this registry still answers every request."""
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    defaults = RegistrySettings.model_fields

    async def status(method: str, url: str) -> int:
        async with registry.http.request(method, url, headers=alice.auth()) as resp:
            return resp.status

    reads = 5 * defaults["api_burst"].default
    statuses = await asyncio.gather(
        *(status("GET", registry.webhooks_url(alice)) for _ in range(reads))
    )
    assert set(statuses) == {200}
    ping = registry.webhooks_url(alice, seeded.webhook["id"]) + "/test"
    sends = 3 * defaults["webhook_sends_burst"].default
    assert {await status("POST", ping) for _ in range(sends)} == {202}


async def test_text_postgres_cannot_store_is_a_400_naming_the_field_not_a_500(registry, pool):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    workflow_url = f"{registry.url}/v1/accounts/{alice.id}/workflows/{seeded.workflow['id']}"
    cases = [
        (
            "POST",
            registry.webhooks_url(alice),
            '{"url":"https://a.example.com","events":["participant.joined"],"name":"nul\\u0000"}',
            "name",
        ),
        ("PATCH", workflow_url, '{"name":"a\\u0000b"}', "name"),
        ("PATCH", workflow_url, '{"code":"export default async function() {} // \\ud800"}', "code"),
        (
            "PATCH",
            registry.webhooks_url(alice, seeded.webhook["id"]),
            '{"roomId":"\\udfff"}',
            "roomId",
        ),
    ]
    for method, url, raw, field in cases:
        resp = await registry.http.request(
            method, url, data=raw, headers={**alice.auth(), "Content-Type": "application/json"}
        )
        body = await resp.json()
        assert resp.status == 400, (method, url, raw, body)
        assert [d["field"] for d in body["error"]["details"]] == [field]


async def test_a_limit_written_in_non_ascii_digits_is_a_400_not_a_500(registry):
    alice = registry.alice
    for limit in ("³", "٣", "1²"):
        resp = await registry.http.get(
            registry.webhooks_url(alice), params={"limit": limit}, headers=alice.auth()
        )
        assert resp.status == 400, limit
        assert (await resp.json())["error"]["code"] == "validation_error"


async def test_a_body_over_the_size_limit_is_a_413_the_document_lists(registry):
    alice = registry.alice
    # 2 MiB once escaped as `\u00e9`: past the body limit (6 x 256 KiB + 64 KiB).
    code = "export default async function() { return '" + "é" * 350_000 + "'; }"
    resp = await registry.http.post(
        f"{registry.url}/v1/accounts/{alice.id}/workflows",
        json={"name": "big", "events": ["participant.joined"], "code": code},
        headers=alice.auth(),
    )
    assert resp.status == 413
    error = (await resp.json())["error"]
    assert error["code"] == "payload_too_large" and error["details"] == []
    document = await (await registry.http.get(f"{registry.url}/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)


async def test_a_request_line_over_the_http_limit_is_a_plain_400_the_document_lists(registry):
    """Found by the fuzzing: 330 repeated `limit` values. aiohttp's parser refuses the request
    before the API reads it, in plain text; the document says so for every operation."""
    alice = registry.alice
    resp = await registry.http.get(
        registry.webhooks_url(alice) + "?" + "&".join(["limit=-4.0597029044615816e-2"] * 330),
        headers=alice.auth(),
    )
    assert resp.status == 400 and resp.content_type == "text/plain"
    document = await (await registry.http.get(f"{registry.url}/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            plain = operation["responses"]["400"]["content"]["text/plain"]
            assert plain == {"schema": {"type": "string"}}, (method, path)


async def test_an_empty_query_parameter_counts_as_left_out_as_the_document_says(registry, pool):
    alice = registry.alice
    seeded = await seed_account(registry, pool, alice)
    url = registry.webhooks_url(alice, seeded.webhook["id"]) + "/deliveries?limit=&status=&cursor="
    resp = await registry.http.get(url, headers=alice.auth())
    assert resp.status == 200
    assert [d["id"] for d in (await resp.json())["data"]["deliveries"]] == [seeded.delivery_id]
    document = await (await registry.http.get(f"{registry.url}/openapi.json")).json()
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert parameter["allowEmptyValue"] is True, parameter["name"]
