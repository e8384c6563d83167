"""The containers' health check: which module PID 1 runs, which port, and the answer of its
/healthz, asked by the service's own `healthcheck` command."""

from __future__ import annotations

import asyncio
import sys

import pytest
from prometheus_client import CollectorRegistry

from shared.health import start_health_server
from shared.healthcheck import main, module_in_command, probe, probe_url
from tests.support.services import free_port


@pytest.mark.parametrize(
    ("cmdline", "module"),
    [
        (b"python\0-m\0services.delivery\0", "services.delivery"),
        (
            b"/sbin/docker-init\0--\0python\0-m\0services.workflow_runner\0",
            "services.workflow_runner",
        ),
        (b"python\0-m\0services.registry.__main__\0", "services.registry.__main__"),
        (b"python\0-c\0import asyncio\0", None),
        (b"python\0-m\0", None),
    ],
)
def test_finds_the_module_in_the_container_command(cmdline, module):
    assert module_in_command(cmdline) == module


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
        assert await asyncio.to_thread(main, ["services.delivery"]) == 0
        assert await asyncio.to_thread(probe, "delivery", "0.0.0.0", port) == 0  # noqa: S104
    finally:
        await runner.cleanup()
    assert await asyncio.to_thread(main, ["services.delivery"]) == 1  # nothing listens any more


def test_unhealthy_when_the_probe_server_is_off_or_the_module_unknown(monkeypatch):
    monkeypatch.setenv("ROOMHOOKS_FANOUT_HEALTH_PORT", "0")
    assert main(["services.fanout"]) == 1
    assert probe("fanout", "127.0.0.1", 0) == 1
    assert main(["services.celery"]) == 1


def test_each_service_answers_its_own_healthcheck_command(monkeypatch, capsys):
    monkeypatch.setenv("ROOMHOOKS_WORKFLOWS_HEALTH_PORT", "0")
    monkeypatch.setattr(sys, "argv", ["services.workflow_runner", "healthcheck"])
    from services.workflow_runner.__main__ import main as runner_main

    with pytest.raises(SystemExit) as exited:
        runner_main()
    assert exited.value.code == 1
    assert "probe server is off" in capsys.readouterr().err
