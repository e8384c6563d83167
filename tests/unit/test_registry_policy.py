"""Pure registry decisions: access, webhook URLs, event lists, room scope."""

from __future__ import annotations

import pytest

from services.registry.policy import (
    Access,
    Role,
    check_events,
    check_room_scope,
    check_webhook_url,
    decide_access,
)

DEV_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
NO_HOSTS: frozenset[str] = frozenset()
ACCOUNT = "6f1c2f7e-2a55-4c3e-9f57-1b0c6a8e1d11"
OTHER = "0b7f5c1e-7d9a-4a0f-8e53-2f6f9d1c3b22"


@pytest.mark.parametrize(
    ("role", "write", "expected"),
    [
        (Role.OWNER, True, Access.ALLOWED),
        (Role.ADMIN, True, Access.ALLOWED),
        (Role.MEMBER, False, Access.ALLOWED),
        (Role.MEMBER, True, Access.READ_ONLY_ROLE),
    ],
)
def test_only_owner_and_admin_write_their_own_account(role, write, expected):
    decision = decide_access(key_account=ACCOUNT, role=role, path_account=ACCOUNT, write=write)
    assert decision is expected


@pytest.mark.parametrize("role", list(Role))
def test_no_role_reaches_another_account(role):
    for write in (False, True):
        decision = decide_access(key_account=ACCOUNT, role=role, path_account=OTHER, write=write)
        assert decision is Access.OTHER_ACCOUNT


def test_account_ids_compare_case_insensitively():
    assert (
        decide_access(
            key_account=ACCOUNT, role=Role.OWNER, path_account=ACCOUNT.upper(), write=True
        )
        is Access.ALLOWED
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/collab-webhook",
        "https://example.com:8443/a?b=c",
        "https://93.184.216.34/hook",
    ],
)
def test_accepts_public_https_urls_in_production(url):
    assert check_webhook_url(url, http_hosts=NO_HOSTS) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("example.com/hook", "absolute https"),
        ("/relative/path", "absolute https"),
        ("http://example.com/hook", "must use https"),
        # A private or loopback host is refused for its address, which https would not change.
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.1", "must reach a public address: 10.0.0.1 is a private address"),
        ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("https://localhost/hook", "localhost is a single-label name"),
        ("https://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("https://169.254.169.254/latest/meta-data", "is the cloud metadata address"),
        ("https://[::1]/hook", "::1 is a loopback address"),
        ("https://", "with a host"),
        ("https://example.com:99999/", "invalid port"),
        ("https://exa mple.com/", "whitespace"),
        ("https://[::1]@/hook", "is not a valid URL"),  # yarl raises IndexError on it
        ("https://a\\@127.0.0.1/", "is not a valid URL"),  # urlsplit and yarl disagree
        ("https://example.com/" + "a" * 2048, "at most 2048"),
    ],
)
def test_refuses_urls_production_does_not_allow(url, reason):
    with pytest.raises(ValueError, match=reason):
        check_webhook_url(url, http_hosts=NO_HOSTS)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://localhost/hook", "https://[::1]:8443/x"]
)
def test_dev_profile_allows_http_and_loopback(url):
    assert check_webhook_url(url, http_hosts=DEV_HOSTS) == url


def test_dev_profile_still_refuses_private_addresses_it_does_not_list():
    with pytest.raises(ValueError, match=r"192\.168\.1\.10 is a private address"):
        check_webhook_url("http://192.168.1.10/hook", http_hosts=DEV_HOSTS)


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([], "at least one event"),
        (["participant.joined", "participant.joined"], "duplicate events: participant.joined"),
        (["participant.joined", "nope.nope", "also.bad"], "unknown events: nope.nope, also.bad"),
    ],
)
def test_event_lists_must_be_non_empty_unique_and_known(events, reason):
    with pytest.raises(ValueError, match=reason):
        check_events(events)


def test_known_events_of_both_scopes_are_accepted():
    events = ["participant.joined", "meeting.started", "webhook.created"]
    assert check_events(events) == events


def test_organization_events_cannot_be_scoped_to_a_room():
    with pytest.raises(ValueError, match=r"organization events cannot be scoped.*member\.added"):
        check_room_scope(["participant.joined", "member.added"], room_id="room-1")
    check_room_scope(["member.added"], room_id=None)
    check_room_scope(["participant.joined"], room_id="room-1")
