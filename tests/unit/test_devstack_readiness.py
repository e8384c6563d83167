"""When `roomhooks dev` says ready: every service's /readyz, each on the port the stack gave it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from devtool.devstack import ServiceLayout, child_env, services_root
from devtool.readiness import (
    PROBE_SERVERS,
    Answer,
    ProbeAddress,
    answer_from,
    failing_checks,
    not_ready_message,
    probe_address,
    probe_notes,
    readyz_urls,
    wait_all_ready,
)
from devtool.supervisor import DevStackError
from services.delivery.settings import DeliverySettings
from services.fanout.settings import FanoutSettings
from services.workflow_runner.settings import RunnerSettings

SETTINGS = {
    "fanout": FanoutSettings,
    "delivery": DeliverySettings,
    "workflow_runner": RunnerSettings,
}


def always_free(_host: str, _port: int) -> bool:
    return True


def never_free(_host: str, _port: int) -> bool:
    return False


def pick_40000(_host: str) -> int:
    return 40000


# --- the probe servers ---------------------------------------------------------------------


def test_knows_the_probe_server_of_every_service_but_the_registry() -> None:
    runnable = ServiceLayout.scan(services_root()).runnable
    assert sorted(PROBE_SERVERS) == sorted(set(runnable) - {"registry"})


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_probe_server_settings_are_the_services_own(service: str) -> None:
    settings = SETTINGS[service]
    server = PROBE_SERVERS[service]
    assert settings.model_config["env_prefix"] == server.prefix
    assert settings.model_fields["health_port"].default == server.default_port
    assert "health_host" in settings.model_fields


def test_a_service_gets_its_default_probe_port_when_free() -> None:
    probe = probe_address("fanout", {}, is_free=always_free, pick_free=pick_40000)
    assert probe == ProbeAddress("fanout", "127.0.0.1", 8081, "ROOMHOOKS_FANOUT_HEALTH_PORT")


def test_a_busy_default_probe_port_moves_to_a_free_one_and_is_said() -> None:
    probe = probe_address("delivery", {}, is_free=never_free, pick_free=pick_40000)
    assert (probe.port, probe.moved_from) == (40000, 8082)
    assert probe_notes([probe]) == ["port 8082 is busy; delivery's probes use 40000"]


def test_a_probe_port_set_in_the_environment_is_kept() -> None:
    environ = {"ROOMHOOKS_WORKFLOWS_HEALTH_PORT": "9183", "ROOMHOOKS_WORKFLOWS_HEALTH_HOST": "::1"}
    probe = probe_address("workflow_runner", environ, is_free=always_free, pick_free=pick_40000)
    assert (probe.host, probe.port, probe.moved_from) == ("::1", 9183, None)
    assert probe_notes([probe]) == []


def test_a_busy_probe_port_set_in_the_environment_is_refused_naming_the_setting() -> None:
    environ = {"ROOMHOOKS_FANOUT_HEALTH_PORT": "9181"}
    with pytest.raises(DevStackError, match=r"port 9181 .* in use .*ROOMHOOKS_FANOUT_HEALTH_PORT"):
        probe_address("fanout", environ, is_free=never_free, pick_free=pick_40000)


@pytest.mark.parametrize("raw", ["http", "-1", "65536", "80.5"])
def test_a_probe_port_that_is_no_port_is_refused_with_the_value(raw: str) -> None:
    environ = {"ROOMHOOKS_DELIVERY_HEALTH_PORT": raw}
    wanted = rf"ROOMHOOKS_DELIVERY_HEALTH_PORT .*{re.escape(repr(raw))}"
    with pytest.raises(DevStackError, match=wanted):
        probe_address("delivery", environ, is_free=always_free, pick_free=pick_40000)


def test_a_service_unknown_to_the_stack_is_refused_saying_where_to_add_it() -> None:
    with pytest.raises(DevStackError, match=r"services/billing .*PROBE_SERVERS"):
        probe_address("billing", {}, is_free=always_free, pick_free=pick_40000)


def test_a_probe_server_turned_off_is_not_asked_and_is_said() -> None:
    environ = {"ROOMHOOKS_FANOUT_HEALTH_PORT": "0"}
    off = probe_address("fanout", environ, is_free=never_free, pick_free=pick_40000)
    assert "fanout" not in readyz_urls("http://127.0.0.1:8080", [off])
    assert probe_notes([off]) == [
        "fanout has no probe server (ROOMHOOKS_FANOUT_HEALTH_PORT=0): not waited for"
    ]


def test_asks_the_registry_on_its_api_and_the_others_on_their_probe_servers() -> None:
    probes = [
        ProbeAddress("fanout", "0.0.0.0", 8081, "ROOMHOOKS_FANOUT_HEALTH_PORT"),  # noqa: S104
        ProbeAddress("delivery", "::1", 8082, "ROOMHOOKS_DELIVERY_HEALTH_PORT"),
    ]
    assert readyz_urls("http://127.0.0.1:9080", probes) == {
        "registry": "http://127.0.0.1:9080/readyz",
        "fanout": "http://127.0.0.1:8081/readyz",
        "delivery": "http://[::1]:8082/readyz",
    }


def test_every_service_is_told_the_probe_port_the_stack_gave_it() -> None:
    probes = [
        ProbeAddress("fanout", "127.0.0.1", 40001, "ROOMHOOKS_FANOUT_HEALTH_PORT", 8081),
        ProbeAddress("delivery", "127.0.0.1", 8082, "ROOMHOOKS_DELIVERY_HEALTH_PORT"),
    ]
    env = child_env({}, database_url="d", bootstrap_servers="b", probes=probes)
    assert env["ROOMHOOKS_FANOUT_HEALTH_PORT"] == "40001"
    assert env["ROOMHOOKS_DELIVERY_HEALTH_PORT"] == "8082"


# --- the answers ---------------------------------------------------------------------------


def test_names_the_checks_that_are_not_ok_in_either_body_shape() -> None:
    plain = {"status": "not_ready", "checks": {"broker": "ok", "runs": "waiting"}}
    enveloped = {"success": False, "data": {"status": "not_ready", "checks": {"outbox": "down"}}}
    assert failing_checks(plain) == "runs=waiting"
    assert failing_checks(enveloped) == "outbox=down"
    assert failing_checks(["not", "a", "body"]) == ""


def test_a_503_answer_says_what_is_not_ready_and_a_200_is_ready() -> None:
    body = json.dumps({"status": "not_ready", "checks": {"runs": "waiting"}}).encode()
    waiting = answer_from(503, body)
    assert not waiting.ready
    assert waiting.describe() == "503: runs=waiting"
    assert answer_from(200, b"{}").ready
    assert answer_from(502, b"<html>bad gateway</html>").describe() == "502"


def test_the_timeout_names_every_service_not_ready_and_its_last_answer() -> None:
    message = not_ready_message(
        {
            "workflow_runner": Answer(503, "runs=waiting"),
            "fanout": Answer(None, "ClientConnectorError: connection refused"),
        },
        timeout_s=60,
    )
    assert "within 60 s" in message
    assert "workflow_runner (503: runs=waiting)" in message
    assert "fanout (no answer: ClientConnectorError: connection refused)" in message
    assert "registry" not in message


# --- waiting -------------------------------------------------------------------------------


class ScriptedProbe:
    """Each URL answers its script in turn, then its last answer for ever; counts the asks."""

    def __init__(self, scripts: dict[str, list[Answer]]) -> None:
        self._scripts = {url: iter(answers) for url, answers in scripts.items()}
        self._last: dict[str, Answer] = {}
        self.asked: list[str] = []

    async def __call__(self, url: str) -> Answer:
        self.asked.append(url)
        self._last[url] = next(self._scripts[url], self._last.get(url, Answer(None)))
        return self._last[url]


def ticking(step: float = 1.0) -> Iterator[float]:
    now = 0.0
    while True:
        yield now
        now += step


async def test_is_ready_only_once_every_service_has_answered_200() -> None:
    waiting, ready = Answer(503, "runs=waiting"), Answer(200)
    probe = ScriptedProbe(
        {"r": [ready], "f": [Answer(None), waiting, ready], "w": [waiting, waiting, waiting, ready]}
    )
    clock = ticking()
    pending = await wait_all_ready(
        {"registry": "r", "fanout": "f", "workflow_runner": "w"},
        timeout_s=100,
        probe=probe,
        interval_s=0,
        clock=lambda: next(clock),
    )
    assert pending == {}
    assert probe.asked.count("w") == 4  # asked until it said 200
    assert probe.asked.count("r") == 1  # a service that said 200 is not asked again


async def test_gives_up_at_the_timeout_with_the_services_still_not_ready() -> None:
    waiting = Answer(503, "runs=waiting")
    probe = ScriptedProbe({"r": [Answer(200)], "w": [waiting]})
    clock = ticking()
    pending = await wait_all_ready(
        {"registry": "r", "workflow_runner": "w"},
        timeout_s=5,
        probe=probe,
        interval_s=0,
        clock=lambda: next(clock),
    )
    assert pending == {"workflow_runner": waiting}
