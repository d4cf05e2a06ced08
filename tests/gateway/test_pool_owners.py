"""Late bytes from an upstream never reach another user (lychgate.gateway.http.pool).

An app that sends more than it framed (a HEAD answered as a GET, content after a 204, more than
its Content-Length) a moment after the rest used to have those bytes read as the answer to the
next request on that pooled connection, whoever sent it: one user could shape the page another
user got. A connection now carries one user's requests only, and none after a HEAD.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.conftest import SID, Connect, SignedIn, Start
from gateway.upstreams import raw_upstream, read_head
from lychgate.gateway.types import Decision, Forward, Handler, RequestHead, Upstream
from lychgate.ids import UserId

pytestmark = pytest.mark.loopback

EVIL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
LATE = 0.3  # the stray bytes come this long after the answer they follow


def _as_path_user(url: str) -> Handler:
    """Forward every request as the user its path names (``/alice/...``)."""
    up = Upstream(url)

    def handler(head: RequestHead) -> Decision:
        user = head.path.split("/")[1]
        who = SignedIn(UserId(user), SID)
        return Forward(up, head.target, head.headers, app=None, who=who)

    return handler


def _get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode()


async def _late_bytes_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its path; ``/.../stray`` and HEAD get late bytes after it."""
    while True:
        head = await read_head(reader)
        method, path = head.split(b" ")[:2]
        body = path.split(b"/")[1]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        if method != b"HEAD":
            writer.write(body)
        await writer.drain()
        if method == b"HEAD" or path.endswith(b"/stray"):
            await asyncio.sleep(LATE)
            writer.write(body if method == b"HEAD" else EVIL)  # HEAD answered as a GET
            await writer.drain()


@pytest.mark.parametrize("first", ["GET /alice/stray", "HEAD /alice/x"])
async def test_an_upstreams_late_bytes_never_answer_another_users_request(
    gateway: Start, connect: Connect, first: str
) -> None:
    async with raw_upstream(_late_bytes_upstream) as up:
        gw = await gateway(_as_path_user(up.url))
        alice, bob = await connect(gw.port), await connect(gw.port)
        method, path = first.split()
        await alice.send(_get(path, method))
        assert (await alice.read_response(head_request=method == "HEAD")).status == 200
        await bob.send(_get("/bob/page"))  # before the stray bytes come
        answer = await bob.read_response()
        assert (answer.status, answer.body) == (200, b"bob")
        await asyncio.sleep(LATE * 2)
        await bob.send(_get("/bob/again"))
        assert (await bob.read_response()).body == b"bob"


async def test_after_a_head_the_same_user_gets_their_own_answers(
    gateway: Start, connect: Connect
) -> None:
    # The HEAD's connection is not reused: the late "content" cannot become the GET's answer.
    async with raw_upstream(_late_bytes_upstream) as up:
        gw = await gateway(_as_path_user(up.url))
        c = await connect(gw.port)
        await c.send(_get("/alice/x", "HEAD"))
        assert (await c.read_response(head_request=True)).status == 200
        await c.send(_get("/alice/page"))
        assert (await c.read_response()).body == b"alice"
        assert up.connections == 2
