"""Which addresses a download may connect to: an explicit deny list of every non-public range
(IANA special-purpose registries, RFC 6890 and successors), not the interpreter's
``ipaddress.is_global``, whose answer changes between Python versions (3.11 calls 6to4
``2002::/16`` global, and 6to4 embeds any IPv4 address, 127.0.0.1 and 10.0.0.1 included).
IPv6 must also lie in the global unicast block ``2000::/3``; the rest of the IPv6 space is
reserved.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..model.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENIED_V4: dict[str, str] = {
    "0.0.0.0/8": "this network / unspecified",
    "10.0.0.0/8": "private",
    "100.64.0.0/10": "shared address space (CGNAT)",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local (cloud metadata)",
    "172.16.0.0/12": "private",
    "192.0.0.0/24": "IETF protocol assignments",
    "192.0.2.0/24": "documentation (TEST-NET-1)",
    "192.31.196.0/24": "AS112-v4",
    "192.52.193.0/24": "AMT",
    "192.88.99.0/24": "6to4 relay anycast",
    "192.168.0.0/16": "private",
    "192.175.48.0/24": "direct delegation AS112",
    "198.18.0.0/15": "benchmarking",
    "198.51.100.0/24": "documentation (TEST-NET-2)",
    "203.0.113.0/24": "documentation (TEST-NET-3)",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved",
    "255.255.255.255/32": "limited broadcast",
}

DENIED_V6: dict[str, str] = {
    "::/128": "unspecified",
    "::1/128": "loopback",
    "::/96": "IPv4-compatible (deprecated)",
    "::ffff:0:0/96": "IPv4-mapped",
    "::ffff:0:0:0/96": "IPv4-translated (SIIT)",
    "64:ff9b::/96": "NAT64 well-known prefix",
    "64:ff9b:1::/48": "NAT64 local-use",
    "100::/64": "discard-only",
    "2001::/32": "Teredo",
    "2001:2::/48": "benchmarking",
    "2001::/23": "IETF protocol assignments",
    "2001:db8::/32": "documentation",
    "2002::/16": "6to4",
    "3fff::/20": "documentation",
    "5f00::/16": "SRv6 SIDs",
    "fc00::/7": "unique local",
    "fe80::/10": "link-local",
    "fec0::/10": "site-local (deprecated)",
    "ff00::/8": "multicast",
}

_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_DENIED: list[tuple[IPNetwork, str]] = [
    (ipaddress.ip_network(net), why) for net, why in {**DENIED_V4, **DENIED_V6}.items()]


def denial(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``None`` when it is)."""
    for net, why in _DENIED:
        if address.version == net.version and address in net:
            return f"{why} ({net})"
    if address.version == 6 and address not in _GLOBAL_UNICAST_V6:
        return "reserved IPv6 space (outside 2000::/3)"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, plus the networks listed in ``allow`` (for development, e.g. a file
    server on ``127.0.0.1/32``)."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow: Iterable[str | IPNetwork] = ()) -> AddressPolicy:
        """A policy allowing ``allow`` (CIDR networks or single addresses) besides public
        addresses; :class:`ConfigurationError` for anything else."""
        if isinstance(allow, str):
            raise ConfigurationError("allow is a list of networks, e.g. ['127.0.0.1/32']")
        nets = []
        for item in allow:
            try:
                nets.append(ipaddress.ip_network(item))
            except (TypeError, ValueError):
                raise ConfigurationError(
                    f"allow: {item!r} is not a network (CIDR such as 127.0.0.1/32, host bits "
                    "zero)") from None
        return cls(tuple(nets))

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused (``None``: allowed)."""
        if any(address.version == n.version and address in n for n in self.allow):
            return None
        why = denial(address)
        return None if why is None else f"{address} is {why}"


__all__ = ["DENIED_V4", "DENIED_V6", "AddressPolicy", "IPAddress", "IPNetwork", "denial"]
