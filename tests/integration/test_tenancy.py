"""The tenancy matrix (`make chaos`'s tenancy scenario), over every route the registry's router
serves.

Account A (alice) and account B (bob) each own a webhook, a workflow, a delivery with an attempt
and an execution. For every route: B's keys get 403/404 and none of A's data, whether they name
A's account or slip A's ids under their own; A's MEMBER key writes nothing; no key gets 401.
Portal sessions likewise: B's reach none of A's routes, a session of A limited to another
webhook none of A's webhook's, and every route not marked for the portal refuses them.
The routes come from the app's router, so a new route is in the matrix (or fails it) at once.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.registry.console import is_console_route
from services.registry.openapi import ROUTES
from services.registry.policy import Role
from services.registry.settings import RegistrySettings
from tests.support.portal import bearer, portal_session
from tests.support.tenants import PATH_PARAMETERS, WORKFLOW_CODE, Seeded, seed_account

pytestmark = pytest.mark.integration

ACCOUNT = "/v1/accounts/{account_id}"
WEBHOOK = ACCOUNT + "/webhooks/{webhook_id}"
WORKFLOW = ACCOUNT + "/workflows/{workflow_id}"
# Routes with no tenant: the same answer for everyone, no key needed.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/event-types"}
# Routes about the calling key itself, under no account: any key, and each sees only itself.
CALLER = {"/v1/me"}
# Under no account and with no key: the credential is the portal link's token in the body
# (test_portal_sessions.py).
LINKS = {"/v1/portal-sessions/exchange"}
# Reads only an OWNER key may make: the other roles get 403.
OWNER_READS = {ACCOUNT + "/api-keys"}
# Reads only OWNER and ADMIN keys may make: MEMBER keys get 403.
WRITER_READS = {ACCOUNT + "/audit-log"}
# A valid body for every write that reads one, so a refusal is about who asks, not what.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", ACCOUNT + "/webhooks"): {
        "url": "https://hooks.example.com/new",
        "events": ["participant.joined"],
    },
    ("PUT", WEBHOOK): {"url": "https://hooks.example.com/put", "events": ["session.started"]},
    ("PATCH", WEBHOOK): {"name": "renamed"},
    ("POST", ACCOUNT + "/workflows"): {
        "name": "new flow",
        "events": ["participant.joined"],
        "code": WORKFLOW_CODE,
    },
    ("PATCH", WORKFLOW): {"name": "renamed"},
    ("POST", WEBHOOK + "/recover"): {"since": "2020-01-01T00:00:00Z"},
    ("POST", ACCOUNT + "/api-keys"): {"role": "MEMBER", "label": "from the matrix"},
    ("POST", ACCOUNT + "/portal-sessions"): {"readOnly": True},
}
BODILESS_WRITES = {
    ("POST", WEBHOOK + "/deliveries/{delivery_id}/redeliver"),
    ("POST", WEBHOOK + "/test"),
    ("DELETE", WEBHOOK),
    ("DELETE", WORKFLOW),
    ("DELETE", ACCOUNT + "/api-keys/{key_id}"),
    ("POST", WEBHOOK + "/rotate-secret"),
}
READ_METHODS = {"GET", "HEAD"}
TENANT_SCHEMAS = ("registry", "delivery", "workflow", "events")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the router's canonical form, with {parameters}

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def writes(self) -> bool:
        return self.method not in READ_METHODS

    @property
    def body(self) -> dict[str, Any] | None:
        return BODIES.get((self.method, self.path))

    def url(self, base: str, values: dict[str, str]) -> str:
        return base + self.path.format(**values)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def served_routes(app) -> list[Route]:
    return sorted(
        {
            Route(r.method, r.resource.canonical)
            for r in app.router.routes()
            if not is_console_route(r)
        },
        key=lambda r: (r.method == "DELETE", r.path, r.method),
    )


def tenant_routes(app) -> list[Route]:
    return [r for r in served_routes(app) if r.path not in PUBLIC | CALLER | LINKS]


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every row of every table the platform owns, to show a refused request changed nothing."""
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(TENANT_SCHEMAS),
        )
        state = {}
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            rows = await conn.fetch(f"SELECT * FROM {name}")
            state[name] = sorted(repr(tuple(r.values())) for r in rows)
    return state


@pytest.fixture
def registry_settings(postgres_settings, kafka_settings) -> RegistrySettings:
    """The dev profile's, with room for one request per route and case without a valid key
    from this one address (the default bucket, 30, is fewer than the routes)."""
    return RegistrySettings(
        postgres=postgres_settings,
        kafka=kafka_settings,
        allowed_http_hosts=None,
        unknown_key_burst=1_000,
    )


@pytest.fixture
async def tenants(registry, pool) -> tuple[Seeded, Seeded]:
    return (
        await seed_account(registry, pool, registry.alice),
        await seed_account(registry, pool, registry.bob),
    )


async def call(registry, route: Route, values: dict[str, str], headers: dict[str, str]):
    resp = await registry.http.request(
        route.method, route.url(registry.url, values), json=route.body, headers=headers
    )
    return resp.status, await resp.text()


def leaks(text: str, seeded: Seeded) -> list[str]:
    return [value for value in seeded.secrets if value in text]


def test_every_served_route_is_in_the_matrix(registry):
    routes = served_routes(registry.app)
    problems = []
    for route in routes:
        if route.path in LINKS:
            continue
        if route.path in PUBLIC | CALLER:
            if route.writes:
                problems.append(f"{route}: a public or caller route that writes")
            continue
        if not route.path.startswith(ACCOUNT):
            problems.append(f"{route}: neither public nor under {ACCOUNT}")
        problems += [
            f"{route}: no value for {{{p}}}" for p in route.params if p not in PATH_PARAMETERS
        ]
        key = (route.method, route.path)
        if route.writes and key not in BODIES and key not in BODILESS_WRITES:
            problems.append(f"{route}: a write with no body in BODIES nor in BODILESS_WRITES")
    served = {(r.method, r.path) for r in routes}
    problems += [f"{k}: in the matrix, not served" for k in {*BODIES, *BODILESS_WRITES} - served]
    assert problems == []
    assert len([r for r in routes if r.path not in PUBLIC]) >= 17  # the matrix is not empty


async def test_the_matrix_aims_at_real_resources(registry, tenants):
    """Every read answers 200 to A's own MEMBER key (OWNER for OWNER_READS) with A's ids: the
    403/404s below are real."""
    alice, seeded = registry.alice, tenants[0]
    for route in tenant_routes(registry.app):
        if route.writes:
            continue
        member = alice.auth(Role.MEMBER)
        if route.path in OWNER_READS | WRITER_READS:
            status, text = await call(registry, route, seeded.path_values, member)
            assert status == 403, f"{route}: {status} {text[:300]}"
        role = Role.OWNER if route.path in OWNER_READS | WRITER_READS else Role.MEMBER
        status, text = await call(registry, route, seeded.path_values, alice.auth(role))
        assert status == 200, f"{route}: {status} {text[:300]}"
        last = route.params[-1]
        assert route.method == "HEAD" or seeded.path_values[last] in text, str(route)


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_another_accounts_key_gets_403_or_404_and_none_of_its_data(
    registry, pool, tenants, role
):
    a, b = tenants
    bob_auth = registry.bob.auth(role)
    before = await snapshot(pool)
    failures = []
    for route in tenant_routes(registry.app):
        for values in _foreign_paths(route, a, b):
            status, text = await call(registry, route, values, bob_auth)
            shown = route.path.format(**values)
            if status not in (403, 404):
                failures.append(f"{route.method} {shown}: {status} {text[:200]}")
            if found := leaks(text, a):
                failures.append(f"{route.method} {shown}: shows A's {found}")
        if not route.writes and route.params == ["account_id"]:
            # B's own collection answers, and holds nothing of A's.
            status, text = await call(registry, route, b.path_values, bob_auth)
            refused = (route.path in OWNER_READS and role is not Role.OWNER) or (
                route.path in WRITER_READS and role is Role.MEMBER
            )
            expected = 403 if refused else 200
            if status != expected or leaks(text, a):
                failures.append(f"{route} on B's own account: {status}, A's {leaks(text, a)}")
    assert failures == []
    assert await snapshot(pool) == before


def _foreign_paths(route: Route, a: Seeded, b: Seeded) -> list[dict[str, str]]:
    """A's account with A's ids; and B's account with any non-empty set of its ids A's (not
    where A's values are B's own: both accounts' workflows have a version 1)."""
    variants = [a.path_values]
    ids = [p for p in route.params if p != "account_id"]
    for n in range(1, len(ids) + 1):
        for swapped in itertools.combinations(ids, n):
            variant = {**b.path_values, **{p: a.path_values[p] for p in swapped}}
            if variant != b.path_values:
                variants.append(variant)
    return variants


async def test_a_member_key_can_write_nothing_that_an_owner_key_can(registry, pool, tenants):
    alice, seeded = registry.alice, tenants[0]
    writes = [r for r in tenant_routes(registry.app) if r.writes]
    before = await snapshot(pool)
    for route in writes:
        status, text = await call(registry, route, seeded.path_values, alice.auth(Role.MEMBER))
        assert status == 403, f"{route}: {status} {text[:300]}"
        assert '"code":"forbidden"' in text
    assert await snapshot(pool) == before
    # The same requests from the OWNER succeed: what the MEMBER was refused was real.
    for route in writes:
        status, text = await call(registry, route, seeded.path_values, alice.auth(Role.OWNER))
        assert 200 <= status < 300, f"{route}: {status} {text[:300]}"
    assert await snapshot(pool) != before


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer ",
        "Bearer rhk_not-a-key-anyone-was-given",
        "Bearer rhp_not-a-portal-session-anyone-was-given",
    ],
    ids=["no-header", "empty", "basic", "bearer-nothing", "unknown-key", "unknown-session"],
)
async def test_without_a_valid_key_every_account_route_answers_401(
    registry, pool, tenants, authorization
):
    seeded = tenants[0]
    headers = {} if authorization is None else {"Authorization": authorization}
    before = await snapshot(pool)
    callers = [r for r in served_routes(registry.app) if r.path in CALLER]
    for route in [*tenant_routes(registry.app), *callers]:
        status, text = await call(registry, route, seeded.path_values, headers)
        assert status == 401, f"{route}: {status} {text[:300]}"
        assert leaks(text, seeded) == [], str(route)
    assert await snapshot(pool) == before


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_a_caller_route_answers_each_key_about_itself_only(registry, tenants, role):
    a, b = tenants
    for account, own, other in ((registry.alice, a, b), (registry.bob, b, a)):
        for path in CALLER:
            resp = await registry.http.get(registry.url + path, headers=account.auth(role))
            text = await resp.text()
            assert resp.status == 200, f"{path}: {resp.status} {text[:300]}"
            data = (await resp.json())["data"]
            assert (data["account_id"], data["role"]) == (own.account_id, role.value)
            assert leaks(text, other) == [], path


PORTAL_ONLY = "portal sessions may manage webhooks only"


def portal_route(route: Route) -> bool:
    """The route table's `portal` flag (HEAD: its GET's)."""
    method = "GET" if route.method == "HEAD" else route.method
    flags = {(r.method, r.path): r.portal for r in ROUTES}
    return flags[(method, route.path)]


def refused_off_portal(route: Route, portal: bool, text: str) -> bool:
    """Off the portal's routes the refusal says why (a HEAD answer has no body to say it)."""
    return portal or route.method == "HEAD" or PORTAL_ONLY in text


def webhook_values(seeded: Seeded) -> list[str]:
    """What only A's seeded webhook and what hangs off it show."""
    hook = seeded.webhook
    return [
        hook["id"],
        hook["url"],
        hook["name"],
        hook["secret"],
        seeded.delivery_id,
        seeded.job_id,
    ]


async def test_a_portal_session_reaches_only_its_own_webhooks_on_portal_routes(
    registry, pool, tenants
):
    """Every route served: off the portal's routes a session is refused; on them, B's session
    gets 403/404 and none of A's data whichever of A's ids it names, and a session of A
    limited to another webhook gets A's seeded webhook, its deliveries and its job as 404."""
    a, b = tenants
    other = await registry.http.post(
        f"{registry.url}/v1/accounts/{a.account_id}/webhooks",
        json={"url": "https://other.example.com/hook", "events": ["participant.left"]},
        headers=registry.alice.auth(),
    )
    assert other.status == 201
    bobs = bearer(await portal_session(registry, registry.bob))
    narrow = bearer(
        await portal_session(
            registry, registry.alice, webhookIds=[(await other.json())["data"]["webhook"]["id"]]
        )
    )
    alices = bearer(await portal_session(registry, registry.alice))
    before = await snapshot(pool)
    failures, reached = [], 0
    for route in tenant_routes(registry.app):
        portal = portal_route(route)
        for values in _foreign_paths(route, a, b):
            status, text = await call(registry, route, values, bobs)
            shown = f"{route.method} {route.path.format(**values)}"
            if status not in (403, 404) or not refused_off_portal(route, portal, text):
                failures.append(f"B's session, {shown}: {status} {text[:200]}")
            if found := leaks(text, a):
                failures.append(f"B's session, {shown}: shows A's {found}")
        scoped = {"webhook_id", "job_id"} & set(route.params)
        if not portal or scoped or not route.writes:
            status, text = await call(registry, route, a.path_values, narrow)
            expected = 404 if portal and scoped else 403 if not portal else 200
            if status != expected or not refused_off_portal(route, portal, text):
                failures.append(f"A's narrow session, {route}: {status} {text[:200]}")
            if found := [v for v in webhook_values(a) if v in text]:
                failures.append(f"A's narrow session, {route}: shows {found}")
        if portal and not route.writes:
            # The same read with a session of all A's webhooks answers: the 404s were real.
            status, text = await call(registry, route, a.path_values, alices)
            reached += status == 200
            if status != 200:
                failures.append(f"A's session, {route}: {status} {text[:200]}")
    assert failures == []
    assert reached >= 8  # webhooks, one, deliveries, one, stats, a job, and their HEADs
    assert await snapshot(pool) == before


async def test_me_answers_each_portal_session_about_itself_only(registry, tenants):
    a, b = tenants
    for account, own, other in ((registry.alice, a, b), (registry.bob, b, a)):
        session = bearer(await portal_session(registry, account, readOnly=True))
        resp = await registry.http.get(registry.url + "/v1/me", headers=session)
        text = await resp.text()
        assert resp.status == 200, text
        data = (await resp.json())["data"]
        assert (data["account_id"], data["kind"], data["read_only"]) == (
            own.account_id,
            "portal",
            True,
        )
        assert leaks(text, other) == []
