"""The OpenAPI document says what the registry answers when it refuses."""

from __future__ import annotations

from services.registry.app import RegistryDeps, create_app
from services.registry.console import is_console_route
from services.registry.openapi import build_openapi
from services.registry.settings import RegistrySettings
from shared.secrets_box import SecretsBox, generate_key

DOCUMENT = build_openapi(version="test", page_size_max=100)
OPERATIONS = [
    (method, path, operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
]


def test_error_details_are_a_required_list_of_fields():
    info = DOCUMENT["components"]["schemas"]["ErrorInfo"]
    assert "details" in info["required"]
    assert info["properties"]["details"]["type"] == "array"
    assert info["properties"]["details"]["items"] == {"$ref": "#/components/schemas/ErrorDetail"}


# Open, yet limited per client address: what it refuses costs a bucket, as unknown keys do.
LIMITED_PER_ADDRESS = {("post", "/v1/portal-sessions/exchange")}


def test_every_operation_with_a_key_may_answer_429_with_its_headers():
    for method, path, operation in OPERATIONS:
        if operation.get("security") == [] and (method, path) not in LIMITED_PER_ADDRESS:
            assert "429" not in operation["responses"], (method, path)
            continue
        refused = operation["responses"]["429"]
        assert set(refused["headers"]) == {
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        }, (method, path)


def test_saving_workflow_code_may_answer_503_busy_and_creating_409_over_quota():
    workflows = DOCUMENT["paths"]["/v1/accounts/{account_id}/workflows"]
    one = DOCUMENT["paths"]["/v1/accounts/{account_id}/workflows/{workflow_id}"]
    for operation in (workflows["post"], one["patch"]):
        assert "Retry-After" in operation["responses"]["503"]["headers"]
    webhooks = DOCUMENT["paths"]["/v1/accounts/{account_id}/webhooks"]
    assert "409" in workflows["post"]["responses"] and "409" in webhooks["post"]["responses"]


def test_every_json_refusal_is_the_error_envelope():
    for method, path, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and "application/json" in response["content"]:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (
                    method,
                    path,
                    status,
                )


async def _no_check(code: str, language: str) -> None:
    return None


def test_the_app_serves_exactly_the_documented_operations():
    deps = RegistryDeps(
        pool=None, producer=None, check_code=_no_check, box=SecretsBox([generate_key()])
    )
    app = create_app(RegistrySettings(), deps)
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and not is_console_route(r)
    }
    documented = {(m.upper(), path) for path, ops in DOCUMENT["paths"].items() for m in ops}
    assert served == documented
