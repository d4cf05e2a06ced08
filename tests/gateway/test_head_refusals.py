"""A HEAD refused before its head was whole gets the error's head alone (RFC 9110 9.3.2).

A 414, a 431 or a 400 for a HEAD came with the error page's content, since the gateway had not
kept the method of a request it refused while parsing it. The connection closes after such an
answer, so nothing was mistaken for the next response; a client still reads a HEAD answer's
head only.
"""

from __future__ import annotations

import pytest

from gateway.client import page_body
from gateway.conftest import Connect, Start, forward_to

pytestmark = pytest.mark.loopback

_FIELDS = "".join(f"X-{i}: v\r\n" for i in range(200))


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"HEAD /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        (f"HEAD / HTTP/1.1\r\nHost: h\r\n{_FIELDS}\r\n".encode(), 431),
        (b"HEAD / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400),
        (
            b"HEAD / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
    ],
    ids=["414", "431", "control byte", "length and chunked"],
)
async def test_a_refused_head_gets_no_content(
    gateway: Start, connect: Connect, request_bytes: bytes, status: int
) -> None:
    gw = await gateway(forward_to("http://127.0.0.1:9"))
    c = await connect(gw.port)
    await c.send(request_bytes)
    answer = await c.read_until_closed()
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert content == b""


async def test_a_refused_get_still_gets_its_page(gateway: Start, connect: Connect) -> None:
    gw = await gateway(forward_to("http://127.0.0.1:9"))
    c = await connect(gw.port)
    await c.send(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    head, _, content = (await c.read_until_closed()).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ")
    rid = head.partition(b"\r\nx-request-id: ")[2].partition(b"\r\n")[0].decode()
    assert content == page_body(414, rid)
