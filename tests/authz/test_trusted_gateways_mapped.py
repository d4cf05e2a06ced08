"""authz's gateway trust goes through the gateway's ``is_trusted`` (THREAT_MODEL T26).

``from_gateway`` keeps only its own rule (a peer that is no IP address came over the unix
socket); unmapping ``::ffff:a.b.c.d`` is ``is_trusted``'s, as for the gateway's proxies.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace
from typing import cast

import pytest
from starlette.requests import Request

from lychgate.authz.context import AuthzContext
from lychgate.authz.web import from_gateway
from lychgate.config import Settings
from lychgate.config.settings import IpNetwork
from lychgate.gateway.trusted_proxies import chain_client


def nets(*specs: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(spec) for spec in specs)


def request_from(peer: str | None) -> Request:
    return Request({"type": "http", "client": None if peer is None else (peer, 50000)})


def context(settings: Settings, gateways: tuple[IpNetwork, ...] | None) -> AuthzContext:
    """Only ``settings`` is read by ``from_gateway``; None keeps the loopback default."""
    if gateways is not None:
        settings = settings.model_copy(update={"authz_trusted_gateways": gateways})
    return cast(AuthzContext, SimpleNamespace(settings=settings))


@pytest.mark.parametrize(
    ("peer", "gateways", "believed"),
    [
        # the unix socket (no client, or a peer that is no IP address): always
        (None, None, True),
        ("", nets("10.0.0.0/8"), True),
        ("garbage", (), True),
        # the loopback default, through a dual-stack listener too
        ("127.0.0.1", None, True),
        ("::ffff:127.0.0.1", None, True),
        ("::1", None, True),
        ("::ffff:203.0.113.9", None, False),
        # configured gateways, IPv4 or written in mapped form
        ("::ffff:10.0.0.5", nets("10.0.0.0/8"), True),
        ("::ffff:10.0.0.5", nets("::ffff:10.0.0.0/104"), True),
        ("::ffff:11.0.0.5", nets("10.0.0.0/8"), False),
        ("::ffff:11.0.0.5", nets("::ffff:10.0.0.0/104"), False),
        # never wider than the networks say
        ("::ffff:10.0.0.5", nets("::/0"), False),
        ("10.0.0.5", nets("::ffff:10.0.0.0/104"), False),
        ("::10.0.0.5", nets("10.0.0.0/8"), False),
        # no TCP gateway configured: only the unix socket
        ("::ffff:127.0.0.1", (), False),
        ("127.0.0.1", (), False),
    ],
)
def test_from_gateway(
    settings: Settings, peer: str | None, gateways: tuple[IpNetwork, ...] | None, believed: bool
) -> None:
    assert from_gateway(request_from(peer), context(settings, gateways)) is believed


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        # a dual-stack proxy appends its peer as ::ffff:a.b.c.d: a trusted proxy all the same
        ("192.0.2.7, ::ffff:10.0.0.5", "192.0.2.7"),
        ("6.6.6.6, ::ffff:192.0.2.7, ::ffff:10.0.0.5, 10.0.0.6", "::ffff:192.0.2.7"),
        ("::ffff:10.0.0.9, ::ffff:10.0.0.5", "::ffff:10.0.0.9"),  # all trusted: the left-most
        ("192.0.2.7, ::10.0.0.5", "::10.0.0.5"),  # not a mapped address: not the proxy
    ],
)
def test_mapped_proxies_in_the_chain(chain: str, client: str) -> None:
    assert chain_client(chain, nets("10.0.0.0/8")) == client
