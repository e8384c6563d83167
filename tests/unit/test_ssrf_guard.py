"""The SSRF guard as pure policy: which addresses it refuses and why, how it reads a URL's
host in every spelling a resolver accepts, what the resolver and a redirect report, and that
the production profile turns it on in every service that connects out."""

from __future__ import annotations

import ipaddress
import re

import aiohttp
import pytest

from services.delivery.dispatcher import redirect_error
from services.delivery.settings import DeliverySettings
from services.registry.policy import check_webhook_url
from services.registry.settings import RegistrySettings
from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.sandbox import FetchRefused, FetchRequest
from services.workflow_runner.settings import RunnerSettings
from shared.guarded_resolver import GuardedResolver
from shared.ssrf import AddressPolicy, BlockedAddress, host_address
from tests.support.network import TableResolver, loopback_only

PRODUCTION = AddressPolicy.build(allow_loopback=False, allowed_networks=[])
DEV = AddressPolicy.build(allow_loopback=True, allowed_networks=[])
NO_HOSTS: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.254", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("100.100.100.200", "a shared (carrier-grade NAT) address"),  # Alibaba's metadata
        ("169.254.169.254", "the cloud metadata address"),
        ("fd00:ec2::254", "the cloud metadata address"),  # AWS over IPv6
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("fc00::1", "a unique local (private) address"),
        ("fd12:3456::1", "a unique local (private) address"),
        ("fec0::1", "a site-local address"),
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 - an address under test
        ("0.1.2.3", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("192.0.2.1", "a reserved or special-purpose address"),
        ("198.18.0.1", "a reserved or special-purpose address"),
        ("240.0.0.1", "a reserved or special-purpose address"),
        ("255.255.255.255", "a reserved or special-purpose address"),
        ("2001:db8::1", "a reserved or special-purpose address"),
        # IPv4 inside IPv6: mapped is the IPv4 address itself; the other forms reach the
        # IPv4 address they carry through a gateway or tunnel.
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:169.254.169.254", "the cloud metadata address"),
        ("::127.0.0.1", "an IPv4-compatible address carrying a loopback address"),
        ("::10.0.0.1", "an IPv4-compatible address carrying a private address"),
        ("::ffff:0:10.0.0.1", "an IPv4-translated address carrying a private address"),
        ("2002:7f00:1::1", "a 6to4 address carrying a loopback address"),
        ("2002:a9fe:a9fe::", "a 6to4 address carrying the cloud metadata address"),
        ("64:ff9b::127.0.0.1", "a NAT64 address carrying a loopback address"),
        ("64:ff9b::192.168.0.1", "a NAT64 address carrying a private address"),
        ("64:ff9b:1::a00:1", "a local-use NAT64 address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a reserved or special-purpose address"),
    ],
)
def test_production_refuses_internal_addresses_and_says_what_they_are(address, kind):
    assert PRODUCTION.kind_refused(address) == kind
    assert not PRODUCTION.allows(address)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "172.32.0.1",  # just past 172.16/12
        "100.128.0.1",  # just past 100.64/10
        "2606:4700::1111",
        "::ffff:93.184.216.34",
        "64:ff9b::93.184.216.34",  # DNS64 answers public IPv4-only hosts in this form
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    ],
)
def test_production_allows_public_addresses(address):
    assert PRODUCTION.kind_refused(address) is None


def test_dev_allows_loopback_in_every_form_and_nothing_else_internal():
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "64:ff9b::127.0.0.1"):
        assert DEV.allows(address), address
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "::"):  # noqa: S104
        assert not DEV.allows(address), address


def test_an_allowed_network_opens_exactly_itself():
    policy = AddressPolicy.build(allow_loopback=False, allowed_networks=["127.0.0.2/32"])
    assert policy.allows("127.0.0.2") and policy.allows("::ffff:127.0.0.2")
    assert policy.kind_refused("127.0.0.1") == "a loopback address"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        # What glibc's resolver (which aiohttp calls for a host it does not read as an IP)
        # and the WHATWG URL standard both read as an IPv4 address.
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7F.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.000.000.001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),  # noqa: S104 - an address under test
        ("0x0", "0.0.0.0"),  # noqa: S104
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("012.0.0.1", "10.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("93.184.216.34", "93.184.216.34"),
        ("example.com", None),
        ("localhost", None),
        ("0x7f.example", None),  # its last label is no number: a name
        ("1.2.3.example", None),
    ],
)
def test_a_host_is_read_as_the_address_a_resolver_would_connect_to(host, address):
    expected = ipaddress.ip_address(address) if address else None
    assert host_address(host) == expected


@pytest.mark.parametrize("host", ["1.2.3.4.5", "0177.0.0.08", "256.0.0.1", "0x0x1.1", "1..1"])
def test_a_host_ending_in_a_number_that_is_no_ipv4_address_is_refused(host):
    with pytest.raises(ValueError, match="neither a name nor a valid IPv4 address"):
        host_address(host)
    assert "neither a name nor a valid IPv4 address" in (PRODUCTION.host_refusal(host) or "")


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("0x7f.1", "0x7f.1 (127.0.0.1) is a loopback address"),
        ("2130706433", "2130706433 (127.0.0.1) is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is the cloud metadata address"),
        ("example.com", None),  # a name: the resolver's business
        ("93.184.216.34", None),
    ],
)
def test_the_refusal_of_a_host_names_the_spelling_and_the_address(host, refusal):
    assert PRODUCTION.host_refusal(host) == refusal


async def test_the_resolver_refuses_a_name_with_only_refused_addresses_and_says_what_they_are():
    resolver = GuardedResolver(
        PRODUCTION,
        TableResolver({"rebind.example": "127.0.0.1", "imds.example": "169.254.169.254"}),
    )
    with pytest.raises(BlockedAddress) as refused:
        await resolver.resolve("rebind.example", 443)
    assert str(refused.value) == (
        "refused by the SSRF guard: rebind.example resolves only to a loopback address"
    )
    with pytest.raises(BlockedAddress, match="resolves only to the cloud metadata address"):
        await resolver.resolve("imds.example", 443)


async def test_the_resolver_keeps_only_the_allowed_addresses_of_a_name():
    class TwoAddresses(TableResolver):
        async def resolve(self, host, port=0, family=0):
            private = await super().resolve(host, port, family)
            return [*private, {**private[0], "host": "93.184.216.34"}]

    resolver = GuardedResolver(PRODUCTION, TwoAddresses({"mixed.example": "10.0.0.1"}))
    [kept] = await resolver.resolve("mixed.example", 443)
    assert kept["host"] == "93.184.216.34"


@pytest.mark.parametrize(
    ("location", "error"),
    [
        (
            "http://127.0.0.1:8080/admin",
            "redirect to http://127.0.0.1:8080/admin not followed; "
            "refused by the SSRF guard: 127.0.0.1 is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "redirect to http://169.254.169.254/latest/meta-data/ not followed; "
            "refused by the SSRF guard: 169.254.169.254 is the cloud metadata address",
        ),
        (
            "https://elsewhere.example/hook",
            "redirect to https://elsewhere.example/hook not followed",
        ),
        ("/relative", "redirect to /relative not followed"),
        (None, "redirect to (no Location) not followed"),
    ],
)
def test_a_redirect_is_never_followed_and_the_error_says_where_it_pointed(location, error):
    assert redirect_error(location, PRODUCTION) == error


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://172.16.0.1/hook",
        "https://192.168.0.1/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[::]/hook",
        "https://[fc00::1]/hook",
        "https://[fe80::1%25eth0]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:a9fe:a9fe]/hook",
        "https://[64:ff9b::a00:1]/hook",
        "https://[2002:a00:1::]/hook",
        "https://2130706433/hook",
        "https://0177.0.0.1/hook",
        "https://0x7f.1/hook",
        "https://127.1/hook",
        "https://127。0。0。1/hook",  # ideographic full stops: yarl reads 127.0.0.1
    ],
)
def test_creation_refuses_an_address_the_guard_refuses_in_any_spelling(url):
    with pytest.raises(ValueError, match=r"must reach a public address: .* is "):
        check_webhook_url(url, http_hosts=NO_HOSTS)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://localhost/hook", "single-label name"),
        ("https://localhost./hook", "single-label name"),
        ("https://metadata/computeMetadata/v1/", "single-label name"),
        ("https://app.localhost/hook", "under .localhost"),
        ("https://metadata.google.internal/computeMetadata/v1/", "under .internal"),
        ("https://printer.local/hook", "under .local"),
        ("https://nas.home.arpa/hook", "under .home.arpa"),
        ("https://1.2.3.4.5/hook", "neither a name nor a valid IPv4 address"),
        ("https://134744072/hook", "8.8.8.8 in an unusual spelling: write it as 8.8.8.8"),
        ("http://hooks.example.com/hook", "must use https"),
    ],
)
def test_creation_refuses_names_only_a_private_resolver_answers(url, reason):
    with pytest.raises(ValueError, match=reason):
        check_webhook_url(url, http_hosts=NO_HOSTS)


def test_creation_leaves_other_names_to_the_send_time_guard():
    # Not resolved at creation: whatever it resolves to now, delivery checks every attempt.
    url = "https://hooks.customer.example/roomhooks"
    assert check_webhook_url(url, http_hosts=NO_HOSTS) == url


@pytest.mark.parametrize(("profile", "loopback"), [("production", False), ("dev", True)])
def test_the_profile_turns_the_guard_on_in_every_service(monkeypatch, profile, loopback):
    monkeypatch.setenv("ROOMHOOKS_PROFILE", profile)
    for var in (
        "DELIVERY_ALLOW_LOOPBACK",
        "WORKFLOWS_ALLOW_LOOPBACK",
        "REGISTRY_ALLOWED_HTTP_HOSTS",
    ):
        monkeypatch.delenv(f"ROOMHOOKS_{var}", raising=False)
    assert DeliverySettings().loopback_allowed is loopback
    assert RunnerSettings().loopback_allowed is loopback
    hosts = RegistrySettings().http_hosts  # http and loopback URLs: dev only
    assert hosts == (frozenset({"localhost", "127.0.0.1", "::1"}) if loopback else frozenset())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "refused by the SSRF guard: 169.254.169.254 is the cloud metadata address",
        ),
        ("http://2130706433:9/", "refused by the SSRF guard: 2130706433 (127.0.0.1) is a loopback"),
        ("http://[::ffff:10.0.0.1]/", "refused by the SSRF guard: ::ffff:a00:1 is a private"),
        ("http://[::1]@/", "not a valid URL"),
        ("ftp://example.com/", "only absolute http(s) URLs"),
    ],
)
async def test_a_workflow_fetch_is_refused_before_any_connection(url, reason):
    async with aiohttp.ClientSession() as session:
        fetcher = Fetcher(session, policy=PRODUCTION, timeout_s=1, max_bytes=1024)
        with loopback_only() as attempted, pytest.raises(FetchRefused, match=re.escape(reason)):
            await fetcher.fetch(FetchRequest(url))
    assert attempted == []
