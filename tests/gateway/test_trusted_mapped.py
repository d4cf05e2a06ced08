"""Trusted proxies seen through a dual-stack listener (SECURITY.md item 3, THREAT_MODEL T8/T26).

A dual-stack listener reports an IPv4 peer as ``::ffff:a.b.c.d``. ``is_trusted`` is the one
place that unmaps it (authz's ``from_gateway`` and ``chain_client`` call it too): the peer is
the IPv4 peer, trusted exactly as far as the configured networks name it, never further.
"""

from __future__ import annotations

import ipaddress

import pytest

from lychgate.config.settings import IpNetwork
from lychgate.gateway.forwarding import forward_headers
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.trusted_proxies import MEMO_MAX, TrustedPeers, is_trusted
from lychgate.gateway.types import RequestHead


def nets(*specs: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(spec) for spec in specs)


V4 = nets("10.0.0.0/8")
MAPPED_FORM = nets("::ffff:10.0.0.0/104")  # the same hosts, written as a dual-stack sees them
V6 = nets("fd00::/8")
EVERY_V6 = nets("::/0")
UNRELATED = nets("192.0.2.0/24", "fc00::/16")


@pytest.mark.parametrize(
    ("peer", "proxies", "trusted"),
    [
        # a mapped peer is its IPv4 address: in and out of an IPv4 network
        ("::ffff:10.0.0.5", V4, True),
        ("::ffff:10.255.255.255", V4, True),
        ("::ffff:11.0.0.5", V4, False),
        ("::ffff:9.255.255.255", V4, False),
        ("::FFFF:10.0.0.5", V4, True),  # any spelling of the same address
        ("0:0:0:0:0:ffff:a00:5", V4, True),
        # ... and in and out of a network written in mapped form
        ("::ffff:10.0.0.5", MAPPED_FORM, True),
        ("::ffff:11.0.0.5", MAPPED_FORM, False),
        ("::ffff:10.0.0.5", nets("::ffff:0:0/96"), True),  # every IPv4 peer, said explicitly
        # plain IPv4 and IPv6 peers, unchanged
        ("10.1.2.3", V4, True),
        ("11.0.0.1", V4, False),
        ("fd00::1", V6, True),
        ("2001:db8::1", V6, False),
        ("2001:db8::1", EVERY_V6, True),
        # never wider than a network says
        ("10.0.0.5", MAPPED_FORM, False),  # a plain IPv4 peer is compared with IPv4 networks
        ("::ffff:10.0.0.5", V6, False),
        ("::ffff:10.0.0.5", EVERY_V6, False),  # ::/0 names IPv6 peers, not IPv4 ones
        ("::ffff:10.0.0.5", nets("::/64"), False),  # contains ::ffff:0:0/96, is not within it
        ("::ffff:10.0.0.5", nets("10.0.0.6/32"), False),
        # only ::ffff:a.b.c.d is unmapped; other embeddings of 10.0.0.5 are other hosts
        ("::10.0.0.5", V4, False),  # IPv4-compatible (deprecated)
        ("64:ff9b::10.0.0.5", V4, False),  # NAT64
        ("2002:a00:5::1", V4, False),  # 6to4
        ("2001:0:a00:5::1", V4, False),  # Teredo-shaped
        ("::ffff:0:10.0.0.5", V4, False),  # IPv4-translated (RFC 2765)
        # a unix-socket peer or anything that is not an address is never trusted
        ("", V4, False),
        ("unix", V4, False),
        ("garbage", V4, False),
        ("::ffff:", V4, False),
        ("::ffff:10.0.0", V4, False),
        ("[::ffff:10.0.0.5]", V4, False),
        ("::ffff:10.0.0.5:443", V4, False),
        ("10.0.0.5:443", V4, False),
        (" 10.0.0.5", V4, False),
    ],
)
def test_is_trusted(peer: str, proxies: tuple[IpNetwork, ...], trusted: bool) -> None:
    assert is_trusted(peer, proxies) is trusted
    # neither the order of the networks nor unrelated company changes the answer
    assert is_trusted(peer, (*UNRELATED, *reversed(proxies), *UNRELATED)) is trusted
    # nor remembering it: asked again, the gateway's own networks answer the same
    peers = TrustedPeers(proxies)
    assert peers == proxies
    assert [is_trusted(peer, peers), peers.trusts(peer), is_trusted(peer, peers)] == [trusted] * 3


def test_trusted_peers_remember_a_bounded_number_of_addresses() -> None:
    peers = TrustedPeers(V4)
    for i in range(MEMO_MAX + 500):
        assert peers.trusts(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        assert not peers.trusts(f"2001:db8::{i:x}")
    assert len(peers._seen) == MEMO_MAX
    # past the bound, still decided, just not remembered
    assert peers.trusts("10.200.0.1")
    assert not peers.trusts("203.0.113.9")
    assert len(peers._seen) == MEMO_MAX


@pytest.mark.parametrize(
    "peer", ["::ffff:10.0.0.5", "10.0.0.5", "fd00::1", "", "garbage", "::ffff:127.0.0.1"]
)
def test_no_proxies_trust_nobody(peer: str) -> None:
    assert is_trusted(peer, ()) is False
    assert is_trusted(peer, []) is False


def test_a_mapped_trusted_proxy_keeps_and_extends_the_chain() -> None:
    # The gateway on a dual-stack listener, behind an IPv4 proxy configured as 10.0.0.0/8.
    head = RequestHead(
        method="GET",
        target="/",
        path="/",
        query="",
        headers=(
            ("host", "wiki.example.com"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "http"),
        ),
        http_version="1.1",
        client_ip="::ffff:10.0.0.5",
        scheme="https",
    )
    host = RequestHost("wiki.example.com")
    out = dict(forward_headers(head, host, trusted_proxies=V4))
    assert out["x-forwarded-for"] == "198.51.100.7, ::ffff:10.0.0.5"
    assert out["x-forwarded-proto"] == "http"
    # not configured: the same peer's headers are replaced
    out = dict(forward_headers(head, host, trusted_proxies=nets("192.168.0.0/16")))
    assert out["x-forwarded-for"] == "::ffff:10.0.0.5"
    assert out["x-forwarded-proto"] == "https"
