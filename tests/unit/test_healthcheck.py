"""The image's health check: which service, which port, and the answer of its /healthz."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from shared.health import start_health_server
from shared.healthcheck import main, probe_url, service_in_command
from tests.support.services import free_port


@pytest.mark.parametrize(
    ("cmdline", "service"),
    [
        (b"python\0-m\0services.delivery\0", "delivery"),
        (b"/sbin/docker-init\0--\0python\0-m\0services.workflow_runner\0", "workflow_runner"),
        (b"python\0-m\0services.registry.__main__\0", "registry"),
        (b"python\0-c\0import asyncio\0", None),
        (b"python\0-m\0services.unknown\0", None),
    ],
)
def test_finds_the_service_in_the_container_command(cmdline, service):
    assert service_in_command(cmdline) == service


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8082/healthz"),  # noqa: S104 - a listen address
        ("::", "http://127.0.0.1:8082/healthz"),
        ("127.0.0.1", "http://127.0.0.1:8082/healthz"),
        ("::1", "http://[::1]:8082/healthz"),
    ],
)
def test_a_wildcard_listen_address_is_probed_on_loopback(host, url):
    assert probe_url(host, 8082) == url


async def test_healthy_when_the_service_s_probe_server_answers(monkeypatch):
    port = free_port()
    monkeypatch.setenv("ROOMHOOKS_DELIVERY_HEALTH_PORT", str(port))

    async def ready() -> dict[str, str]:
        return {}

    runner = await start_health_server(ready, CollectorRegistry(), host="127.0.0.1", port=port)
    try:
        assert await asyncio.to_thread(main, ["delivery"]) == 0
    finally:
        await runner.cleanup()
    assert await asyncio.to_thread(main, ["delivery"]) == 1  # nothing listens any more


def test_unhealthy_when_the_probe_server_is_off_or_the_service_unknown(monkeypatch):
    monkeypatch.setenv("ROOMHOOKS_FANOUT_HEALTH_PORT", "0")
    assert main(["fanout"]) == 1
    assert main(["celery"]) == 1
