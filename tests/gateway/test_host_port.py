"""The port a client writes in Host is neither routed on nor passed on (routing.at_public_port).

Apps build absolute links from ``Host`` or ``X-Forwarded-Host``. With the client's port there,
``Host: wiki.example.com:1337`` would give a page whose links point at port 1337, which a shared
cache in front of the gateway could then serve to everyone (web cache poisoning).
"""

from __future__ import annotations

import pytest

from gateway.world import World, handler_for
from lychgate.gateway.routing import RequestHost, at_public_port, parse_host
from lychgate.gateway.types import Forward

SUBS = World("subdomains")  # https://auth.example.com: the default port
SINGLE = World("single-host")  # http://localhost:8080


def test_the_public_port_replaces_the_clients() -> None:
    assert at_public_port(parse_host("wiki.example.com:1337"), None) == RequestHost(
        "wiki.example.com"
    )
    assert at_public_port(parse_host("localhost"), 8080).authority == "localhost:8080"
    same = parse_host("localhost:8080")
    assert at_public_port(same, 8080) is same  # the usual case allocates nothing


def _forwarded(world: World, host: str, **kw: object) -> dict[str, str]:
    handler, _ = handler_for(world)
    head = world.head("/page", host=host, cookies=[world.token()], **kw)  # type: ignore[arg-type]
    decision = handler(head)
    assert isinstance(decision, Forward), decision
    return dict(decision.headers)


@pytest.mark.parametrize(
    "host", ["wiki.example.com", "wiki.example.com:443", "wiki.example.com:1337"]
)
def test_an_app_sees_its_public_host_whatever_port_was_written(host: str) -> None:
    fields = _forwarded(SUBS, host)
    assert fields["host"] == "wiki.example.com"
    assert fields["x-forwarded-host"] == "wiki.example.com"


@pytest.mark.parametrize("host", ["localhost:8080", "localhost", "localhost:9999"])
def test_single_host_forwards_the_public_authority(host: str) -> None:
    fields = _forwarded(SINGLE, host)
    assert fields["host"] == "localhost:8080"
    assert fields["x-forwarded-host"] == "localhost:8080"
