"""SECURITY.md item 2 through the whole gateway: the path decided on is the path forwarded.

``test_paths.py`` tests the normalization, ``test_admission_handler.py`` that the decision
carries the normalized target, and ``test_proxy.py`` that the engine sends what the handler
chose. Here the three run together: raw request bytes go to the real engine and the real
:class:`GatewayHandler`, and an h11 upstream (an independent parser) records the exact target
it received, so a differential between what was decided on and what was sent shows up.
"""

from __future__ import annotations

import pytest

from gateway.conftest import Connect, Start
from gateway.test_security_audit import HOST, Deployment, deployment

pytestmark = pytest.mark.loopback

FORWARDED = [
    ("/x/../page", "/page"),
    ("/a/%2e%2e/b", "/b"),
    ("/a/./b/", "/a/b/"),
    ("//double//slash", "/double//slash"),  # only the leading run collapses
    ("/%7euser/a", "/~user/a"),
    ("/..", "/"),
    ("/a/b/..", "/a/"),
    ("/p|^", "/p%7C%5E"),
    ("/group%2fproject", "/group%2Fproject"),
    ("/a/%252e%252e/b", "/a/%252e%252e/b"),  # double encoding stays what it is: no decoding twice
    ("/a;v=1/x", "/a;v=1/x"),
    ("/a?x=1/../&y=%2e%2e", "/a?x=1/../&y=%2e%2e"),  # a query is not a path: kept as sent
    ("/Page/CASE", "/Page/CASE"),
]

REFUSED = [
    "/a/..%2f..%2fetc",
    "/..;/x",
    "/a/%2e%2e%2fb",
    "/%00",
    "/a%0d%0aX-Lychgate-User:%20admin",
    "/a\\b",
    "/%c0%ae%c0%ae/x",
    "/%ff",
    "/.lychgate%2Finternal%2Ffeed",
    "/;x/.lychgate/internal/feed",
    "http://other.example/page",
]


async def send(d: Deployment, connect: Connect, target: str) -> int:
    c = await connect(d.port)
    await c.send(
        b"GET "
        + target.encode()
        + b" HTTP/1.1\r\nHost: "
        + HOST.encode()
        + b"\r\n"
        + d.cookie()
        + b"Connection: close\r\n\r\n"
    )
    return (await c.read_response()).status


@pytest.mark.parametrize(("sent", "forwarded"), FORWARDED, ids=[s for s, _ in FORWARDED])
async def test_the_upstream_gets_the_target_that_was_decided_on(
    gateway: Start, connect: Connect, sent: str, forwarded: str
) -> None:
    async with deployment(gateway) as d:
        assert await send(d, connect, sent) == 200
        assert [s.target for s in d.app.seen] == [forwarded]
        assert d.authz.seen == []


@pytest.mark.parametrize("sent", REFUSED)
async def test_a_target_that_could_read_two_ways_reaches_nobody(
    gateway: Start, connect: Connect, sent: str
) -> None:
    async with deployment(gateway) as d:
        assert await send(d, connect, sent) == 400
        assert d.app.seen == []
        assert d.authz.seen == []


@pytest.mark.parametrize(
    "sent", ["/x/../.lychgate/internal/feed", "/x/%2e%2e/.LYCHGATE/internal/feed"]
)
async def test_dot_segments_cannot_walk_into_the_internal_api(
    gateway: Start, connect: Connect, sent: str
) -> None:
    # Normalized first, then routed: the reserved namespace is decided on the normalized path,
    # and its internal part is never served to a client (THREAT_MODEL.md T17).
    async with deployment(gateway) as d:
        assert await send(d, connect, sent) == 404
        assert d.app.seen == []
        assert d.authz.seen == []
