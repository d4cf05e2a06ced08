"""Trusted proxies: whether a TCP peer is one, and which client a forwarded chain is from.

The gateway believes forwarding headers only from a peer in ``trusted_proxies`` (none by
default: STYLE.md item 6), and authz believes the gateway's ``X-Forwarded-For`` only from one
in ``authz_trusted_gateways`` (loopback by default). Both ask :func:`is_trusted`, which also
sees through a dual-stack listener's IPv4-mapped view of an IPv4 peer. :func:`chain_client`
then names the client behind such proxies, for authz and the access log.

Every request forwarded asks (for its forwarding headers and its request id), and the answer
costs some 2.5 µs of :mod:`ipaddress` parsing; a gateway's peers are the same few addresses
again and again (its load balancers, its clients). :class:`TrustedPeers`, the networks the
gateway is configured with, remembers each answer for up to :data:`MEMO_MAX` addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final

from lychgate.config.settings import IpNetwork

#: The IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2).
_IPV4_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
#: The most peer addresses a :class:`TrustedPeers` remembers (about 150 bytes each); the
#: others are decided afresh each time. Bounded: clients choose their addresses (an IPv6 /64).
MEMO_MAX: Final = 4096


class TrustedPeers(tuple[IpNetwork, ...]):
    """Trusted networks that remember, per peer address, whether :func:`is_trusted` trusts it.

    A tuple of the networks, so it stands wherever they do; :func:`is_trusted` asks it rather
    than parsing the address again.
    """

    _seen: dict[str, bool]

    def __new__(cls, networks: Iterable[IpNetwork]) -> TrustedPeers:
        peers = super().__new__(cls, networks)
        peers._seen = {}
        return peers

    def trusts(self, client_ip: str) -> bool:
        """:func:`is_trusted` for these networks, remembered."""
        seen = self._seen
        known = seen.get(client_ip)
        if known is None:
            known = _decide(client_ip, self)
            if len(seen) < MEMO_MAX:
                seen[client_ip] = known
        return known


def chain_client(chain: str, trusted: Sequence[IpNetwork]) -> str:
    """The right-most entry of an ``X-Forwarded-For`` chain that no trusted proxy accounts for
    (the left-most when every entry is trusted). An entry that is no IP address is nobody we
    trust, so it is the answer when it is reached. authz and the access log read it so."""
    entries = [entry.strip() for entry in chain.split(",") if entry.strip()]
    for entry in reversed(entries):
        if not is_trusted(entry, trusted):
            return entry
    return entries[0] if entries else ""


def is_trusted(client_ip: str, trusted_proxies: Sequence[IpNetwork]) -> bool:
    """True if the TCP peer ``client_ip`` is inside one of ``trusted_proxies``.

    A dual-stack listener reports an IPv4 peer as the IPv4-mapped ``::ffff:a.b.c.d`` (RFC 4291
    section 2.5.5.2). Such a peer *is* the IPv4 peer ``a.b.c.d``: it is trusted if ``a.b.c.d``
    is inside an IPv4 network, or inside an IPv6 network written in mapped form (one within
    ``::ffff:0:0/96``, such as ``::ffff:10.0.0.0/104``). A wider IPv6 network that merely
    contains the mapped range (``::/0``) names IPv6 peers, not IPv4 ones, so it does not trust
    them. No other embedding of an IPv4 address (IPv4-compatible ``::a.b.c.d``, 6to4, Teredo,
    NAT64) is unmapped: those are other hosts. A plain IPv4 peer is compared with the IPv4
    networks only. So a peer is never trusted beyond what a configured network names.
    """
    if not trusted_proxies:
        return False  # the default, and the common case: first and cheapest
    if type(trusted_proxies) is TrustedPeers:
        return trusted_proxies.trusts(client_ip)
    return _decide(client_ip, trusted_proxies)


def _decide(client_ip: str, trusted_proxies: Sequence[IpNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False  # a unix-socket peer or anything odd is never a trusted proxy
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is None:
        return any(address in network for network in trusted_proxies)  # "in" is per family
    for network in trusted_proxies:
        if isinstance(network, ipaddress.IPv4Network):
            if mapped in network:
                return True
        elif address in network and network.subnet_of(_IPV4_MAPPED):
            return True
    return False
