"""Which reason a refused webhook URL gets when several apply: the host's, which https would not
change, before the scheme's; the scheme's only for a host that may otherwise be reached."""

from __future__ import annotations

import pytest

from services.registry.policy import check_webhook_url

PRODUCTION = frozenset()
DEV = frozenset({"127.0.0.1", "localhost", "::1"})


def reason(url: str, http_hosts: frozenset[str] = PRODUCTION) -> str:
    with pytest.raises(ValueError) as caught:
        check_webhook_url(url, http_hosts=http_hosts)
    return str(caught.value)


@pytest.mark.parametrize(
    ("host", "what"),
    [
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("192.168.1.10", "192.168.1.10 is a private address"),
        ("172.16.5.4", "172.16.5.4 is a private address"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("0x7f.1", "0x7f.1 (127.0.0.1) is a loopback address"),
        ("169.254.10.1", "169.254.10.1 is a link-local address"),
        ("169.254.169.254", "169.254.169.254 is the cloud metadata address"),
        ("[fe80::1]", "fe80::1 is a link-local address"),
        ("[fd12::1]", "fd12::1 is a unique local (private) address"),
        ("100.64.0.1", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),  # noqa: S104 - a URL, not a bind
        ("localhost", "localhost is a single-label name"),
        ("db.internal", "db.internal is a name under .internal"),
    ],
)
def test_a_host_that_cannot_be_reached_is_named_over_http_as_over_https(host: str, what: str):
    over_http, over_https = reason(f"http://{host}/hook"), reason(f"https://{host}/hook")
    assert over_http == over_https
    assert over_http.startswith("must reach a public address: ") and what in over_http
    assert "https" not in over_http


def test_the_dev_profile_names_a_private_address_it_does_not_allow_over_http() -> None:
    assert "10.0.0.1 is a private address" in reason("http://10.0.0.1/hook", DEV)
    assert check_webhook_url("http://127.0.0.1:9000/hook", http_hosts=DEV)


def test_only_a_host_that_may_be_reached_is_refused_for_its_scheme() -> None:
    assert reason("http://hooks.example.com/hook").startswith("must use https")
    assert check_webhook_url("https://hooks.example.com/hook", http_hosts=PRODUCTION)


def test_a_scheme_that_is_not_http_is_refused_before_the_host_is_read() -> None:
    assert "scheme 'ftp' is not allowed" in reason("ftp://10.0.0.1/hook")
