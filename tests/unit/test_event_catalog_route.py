"""`GET /v1/event-types` over aiohttp's test client: every entry with its payload schema and
example, the same bytes for every caller, cacheable, and 304 when the caller has them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from services.registry.http import build_middlewares
from services.registry.metrics import RegistryMetrics
from services.registry.system_routes import SystemRoutes
from shared.events import CATALOG, example_payload, payload_schema

URL = "/v1/event-types"


async def _ready() -> dict[str, str]:
    return {"postgres": "ok"}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    metrics = RegistryMetrics.create()
    app = web.Application(middlewares=build_middlewares(metrics.requests, metrics.latency))
    SystemRoutes(_ready, CollectorRegistry(), {}).register(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_every_event_comes_with_its_payload_schema_and_example(client: TestClient):
    resp = await client.get(URL)
    body = await resp.json()

    assert resp.status == 200 and body["success"] is True
    entries = body["data"]["event_types"]
    assert [e["name"] for e in entries] == list(CATALOG)
    for entry in entries:
        spec = CATALOG[entry["name"]]
        assert entry == {
            **spec.public(),
            "payload_schema": payload_schema(spec),
            "example": example_payload(spec.name),
        }


async def test_the_answer_is_cacheable_with_an_etag_that_does_not_change(client: TestClient):
    first = await client.get(URL, headers={"Authorization": "Bearer rh_anything"})
    second = await client.get(URL)

    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert second.headers["ETag"] == etag
    assert await first.read() == await second.read()


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*"],
    ids=["same", "weak", "in-a-list", "any"],
)
async def test_a_caller_holding_the_catalog_gets_304_without_a_body(
    client: TestClient, if_none_match: str
):
    etag = (await client.get(URL)).headers["ETag"]

    resp = await client.get(URL, headers={"If-None-Match": if_none_match.format(etag=etag)})

    assert resp.status == 304
    assert await resp.read() == b""
    assert resp.headers["ETag"] == etag
    assert resp.headers["Cache-Control"] == "public, max-age=300"


@pytest.mark.parametrize(
    "if_none_match",
    ['"0123456789abcdef"', "", "garbage", '"unterminated', "{bare}", "W/", "\t,\t"],
    ids=["other", "empty", "unquoted", "unterminated", "unquoted-etag", "weak-nothing", "commas"],
)
async def test_any_other_if_none_match_gets_the_whole_catalog(
    client: TestClient, if_none_match: str
):
    etag = (await client.get(URL)).headers["ETag"]

    resp = await client.get(URL, headers={"If-None-Match": if_none_match.format(bare=etag[1:-1])})

    assert resp.status == 200
    assert [e["name"] for e in (await resp.json())["data"]["event_types"]] == list(CATALOG)
