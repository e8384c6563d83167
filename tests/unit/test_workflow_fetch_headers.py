"""A workflow's fetch sends the code's headers, with ours as User-Agent when it set none."""

from __future__ import annotations

from importlib.metadata import version

from services.workflow_runner.bindings import with_user_agent, workflow_user_agent


def test_the_user_agent_names_the_workflow_runtime_and_its_version() -> None:
    assert workflow_user_agent() == f"roomhooks-workflow/{version('roomhooks')}"


def test_a_request_without_a_user_agent_gets_ours() -> None:
    headers = {"content-type": "application/json"}
    assert with_user_agent(headers, "roomhooks-workflow/1.2") == {
        "content-type": "application/json",
        "User-Agent": "roomhooks-workflow/1.2",
    }
    assert headers == {"content-type": "application/json"}  # the code's dict is not changed


def test_a_user_agent_the_code_set_stays_whatever_its_case() -> None:
    headers = {"user-agent": "acme-bot/2.1"}
    assert with_user_agent(headers, "roomhooks-workflow/1.2") == {"user-agent": "acme-bot/2.1"}
