"""The SSRF guard's decisions: which address may we connect to, and which host is an address.

Pure; the delivery dispatcher, its resolver, the workflow `fetch` and the registry's URL check
apply them. A refusal is a reason a human can act on ("10.0.0.1 is a private address").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

GUARD = "refused by the SSRF guard"


class BlockedAddress(Exception):
    """Every address of the host is one the guard refuses."""


def guard_message(reason: str) -> str:
    return f"{GUARD}: {reason}"


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Named before the generic "not global" test, so the reason says what the address is.
_KINDS: tuple[tuple[tuple[Network, ...], str], ...] = (
    (_nets("0.0.0.0/8", "::/128"), "an unspecified address"),  # Linux connects it to itself
    (_nets("169.254.169.254/32", "fd00:ec2::254/128"), "the cloud metadata address"),
    (_nets("169.254.0.0/16", "fe80::/10"), "a link-local address"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "a private address"),
    (_nets("fc00::/7"), "a unique local (private) address"),
    (_nets("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (_nets("fec0::/10"), "a site-local address"),
    (_nets("64:ff9b:1::/48"), "a local-use NAT64 address"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form carries, which a gateway or tunnel would reach."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return "a NAT64 address", low32
    if ip.sixtofour is not None:
        return "a 6to4 address", ip.sixtofour
    if ip in _TRANSLATED:
        return "an IPv4-translated address", low32
    if ip in _COMPATIBLE and int(ip) > 1:
        return "an IPv4-compatible address", low32
    return None


@dataclass(frozen=True)
class AddressPolicy:
    allow_loopback: bool = False
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def build(cls, *, allow_loopback: bool, allowed_networks: Iterable[str]) -> AddressPolicy:
        return cls(
            allow_loopback=allow_loopback,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
        )

    def allows(self, address: str | IPAddress) -> bool:
        return self.kind_refused(address) is None

    def kind_refused(self, address: str | IPAddress) -> str | None:
        """What the address is when the guard refuses it ("a private address"); None: allowed.

        Public unicast addresses only, unless the operator allowed loopback or a network.
        An IPv4-mapped IPv6 address is judged as the IPv4 address it is; NAT64, 6to4,
        IPv4-compatible and -translated forms are refused when the IPv4 address they carry is.
        """
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed_networks):
            return None
        if ip.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        for networks, kind in _KINDS:
            if any(ip in network for network in networks):
                return kind
        if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
            form, carried = embedded
            inner = self.kind_refused(carried)
            if inner is not None:
                return f"{form} carrying {inner}"
        if ip.is_multicast:
            return "a multicast address"
        if not ip.is_global:
            return "a reserved or special-purpose address"
        return None

    def host_refusal(self, host: str) -> str | None:
        """Why a URL's host is refused when it is an address, in any spelling; None for an
        allowed address and for a name (the resolver judges the addresses a name has)."""
        try:
            ip = host_address(host)
        except ValueError as exc:
            return str(exc)
        if ip is None:
            return None
        kind = self.kind_refused(ip)
        if kind is None:
            return None
        shown = host if host.strip("[]").lower() == str(ip) else f"{host} ({ip})"
        return f"{shown} is {kind}"


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host spells, or None for a name.

    Besides the standard forms this reads what resolvers still accept (inet_aton) and
    browsers parse (the WHATWG URL standard): `2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`
    are all 127.0.0.1. A host whose last label is a number is an IPv4 address or nothing:
    ValueError says so (no top-level domain is numeric).
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    labels = bare.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    if not _is_number(labels[-1]):
        return None
    value = _ipv4_value(labels)
    if value is None:
        raise ValueError(f"{host} is neither a name nor a valid IPv4 address")
    return ipaddress.IPv4Address(value)


def is_canonical_ipv4(host: str) -> bool:
    """Dotted quad, decimal, no leading zeros: the one spelling every client reads alike."""
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False


_DIGITS = {
    16: frozenset("0123456789abcdefABCDEF"),
    10: frozenset("0123456789"),
    8: frozenset("01234567"),
}


def _is_number(label: str) -> bool:
    if label[:2].lower() == "0x":
        return set(label[2:]) <= _DIGITS[16]
    return bool(label) and set(label) <= _DIGITS[10]


def _ipv4_value(labels: list[str]) -> int | None:
    """WHATWG IPv4 parsing: 1 to 4 parts, each decimal, 0-octal or 0x-hex; the last part
    fills the bytes that remain."""
    if len(labels) > 4:
        return None
    numbers: list[int] = []
    for label in labels:
        number = _ipv4_number(label)
        if number is None:
            return None
        numbers.append(number)
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    return sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last


def _ipv4_number(label: str) -> int | None:
    if label[:2].lower() == "0x":
        digits, radix = label[2:] or "0", 16
    elif len(label) > 1 and label.startswith("0"):
        digits, radix = label[1:], 8
    else:
        digits, radix = label, 10
    if not digits or not set(digits) <= _DIGITS[radix]:
        return None
    return int(digits, radix)
