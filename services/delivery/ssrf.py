"""The SSRF guard's decision: may we connect to this address? Pure; the resolver applies it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """Every address of the host is one the guard refuses."""


@dataclass(frozen=True)
class AddressPolicy:
    allow_loopback: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def build(cls, *, allow_loopback: bool, allowed_networks: Iterable[str]) -> AddressPolicy:
        return cls(
            allow_loopback=allow_loopback,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
        )

    def allows(self, address: str | IPAddress) -> bool:
        """Public unicast addresses only, unless the operator allowed loopback or a network.

        Private, loopback, link-local (cloud metadata at 169.254.169.254 included),
        multicast, reserved and unspecified addresses are refused; an IPv4-mapped IPv6
        address is judged as the IPv4 address it carries.
        """
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed_networks):
            return True
        if ip.is_loopback:
            return self.allow_loopback
        return ip.is_global and not ip.is_multicast
