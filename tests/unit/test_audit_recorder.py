"""The audit recorder: which fields a change set, and what of their values may be kept."""

from __future__ import annotations

import uuid

import pytest

from services.registry.audit.models import Actor, AuditRecord
from services.registry.audit.recorder import MASK, audit_entry, changed_fields, safe_change
from tests.support.registry_contracts import T0

ACCOUNT = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            {"name": "a", "url": "https://x"},
            {"name": "b", "url": "https://x"},
            [{"field": "name", "value": "b"}],
            id="only-the-fields-that-differ",
        ),
        pytest.param(
            None,
            {"name": "a", "room_id": None, "events": ["e"], "headers": {}},
            [{"field": "name", "value": "a"}, {"field": "events", "value": ["e"]}],
            id="a-new-target-records-what-is-set",
        ),
        pytest.param(
            {"headers": {"Authorization": "Bearer old"}},
            {"headers": {"Authorization": "Bearer new", "X-Tenant": "t-1"}},
            [{"field": "headers", "value": {"Authorization": MASK, "X-Tenant": MASK}}],
            id="header-values-masked-names-kept",
        ),
        pytest.param(
            {"headers": {"Authorization": "Bearer old"}},
            {"headers": {"Authorization": "Bearer old"}},
            [],
            id="unchanged-headers-are-no-change",
        ),
        pytest.param(
            {"code": "export default 1", "version": 1},
            {"code": "export default 2", "version": 2},
            [{"field": "code", "hidden": True}, {"field": "version", "value": 2}],
            id="code-not-copied-its-new-version-is",
        ),
        pytest.param(
            None,
            {"secret": "whsec_abc", "key": "rhk_abc", "token": "t"},
            [
                {"field": "secret", "hidden": True},
                {"field": "key", "hidden": True},
                {"field": "token", "hidden": True},
            ],
            id="secrets-named-never-copied",
        ),
        pytest.param(
            {"id": "1", "updated_at": "a", "last_used_at": None, "enabled": True},
            {"id": "1", "updated_at": "b", "last_used_at": "c", "enabled": False},
            [{"field": "enabled", "value": False}],
            id="bookkeeping-is-no-change",
        ),
    ],
)
def test_changed_fields(before, after, expected):
    assert changed_fields(before, after) == expected


def test_a_secret_given_as_a_value_is_dropped():
    assert safe_change("secret", "0123abcd") == {"field": "secret", "hidden": True}


def test_an_entry_without_an_actor_is_the_platforms():
    entry = audit_entry(None, ACCOUNT, "webhook.disabled", uuid.uuid4(), [], now=T0)
    assert entry.actor == Actor.system(ACCOUNT)
    record = AuditRecord.of(entry).model_dump(mode="json")
    assert (record["actor"], record["key_id"], record["role"]) == ("system", None, None)


def test_an_entry_names_the_key_never_more():
    key_id = uuid.uuid4()
    actor = Actor("key", ACCOUNT, key_id, "ci", "ADMIN")
    entry = audit_entry(actor, ACCOUNT, "webhook.created", "w-1", [], now=T0)
    record = AuditRecord.of(entry).model_dump(mode="json")
    assert record["actor"] == "key"
    assert (record["key_id"], record["key_label"], record["role"]) == (str(key_id), "ci", "ADMIN")
    assert record["target_id"] == "w-1" and record["account_id"] == ACCOUNT
