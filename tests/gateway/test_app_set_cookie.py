"""No app sets the gateway's cookies: Set-Cookie lines in Lychgate's namespace are dropped.

In single-host mode every app shares the gateway's origin, so an app that could set
``lychgate=...`` would toss its operator's own token onto the user (a login fixation into
another app) or sign the user out. The engine applies ``Forward.response_fields`` to every
response head of the request (final, 103 and 101); the handler sets it for app requests only,
because authz owns these cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway.client import get
from gateway.conftest import Connect, Start
from gateway.upstreams import raw_upstream, read_head
from lychgate.gateway.cookies import drop_lychgate_set_cookies
from lychgate.gateway.types import Decision, Forward, Handler, RequestHead, Upstream


@pytest.mark.parametrize(
    "line",
    [
        b"lychgate=tok; Path=/",
        b"__Host-lychgate=tok; Path=/; Secure",
        b"__Secure-lychgate-session=1",
        b" LychGate = tok",
        b"lychgate_sid=1; HttpOnly",
        b"lychgate=",
        # Nameless: stored with an empty name, sent back as "lychgate=tok" (RFC 6265bis 5.8.3).
        b"=lychgate=tok; Path=/",
        b" \t= lychgate_session=abc",
        b"=__Host-lychgate=tok; Secure",
        b"=LYCHGATE_state=1",
    ],
)
def test_our_namespace_is_dropped(line: bytes) -> None:
    fields = [(b"content-type", b"text/plain"), (b"set-cookie", line), (b"x-a", b"1")]
    assert drop_lychgate_set_cookies(fields) == [(b"content-type", b"text/plain"), (b"x-a", b"1")]


@pytest.mark.parametrize(
    "line",
    [
        b"session=1; Path=/",
        b"app_lychgate=1",  # the namespace is a prefix of the name, not a substring
        b"lychgate",  # no "=": a nameless cookie to a browser, never one of ours
        b"other=1; Comment=lychgate=x",
        b"x=lychgate=1",
        b"=other=1",  # nameless, sent back as "other=1"
        b"==lychgate=1",  # nameless with the value "=lychgate=1": sent back nameless too
    ],
)
def test_other_cookies_are_kept(line: bytes) -> None:
    fields = [(b"set-cookie", line)]
    assert drop_lychgate_set_cookies(fields) == fields


def test_only_our_lines_go_among_several() -> None:
    fields = [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"lychgate=evil"),
        (b"set-cookie", b"b=2"),
    ]
    assert drop_lychgate_set_cookies(fields) == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


def test_without_set_cookie_the_fields_are_returned_as_they_are() -> None:
    fields = [(b"content-length", b"2")]
    assert drop_lychgate_set_cookies(fields) is fields


def guarded(url: str) -> Handler:
    up = Upstream(url)

    def handler(head: RequestHead) -> Decision:
        return Forward(
            up,
            head.target,
            head.headers,
            app=None,
            allow_upgrade=True,
            response_fields=drop_lychgate_set_cookies,
        )

    return handler


# The second line names no cookie, and a browser sends it back as "lychgate=operators-token".
TOSS = (
    b"Set-Cookie: lychgate=operators-token; Path=/\r\n"
    b"Set-Cookie: =lychgate=operators-token; Path=/\r\n"
    b"Set-Cookie: theme=dark\r\n"
)


@contextlib.asynccontextmanager
async def tossing(gateway: Start, response: bytes) -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(response)
        await writer.drain()
        await reader.read()  # until the gateway closes

    async with raw_upstream(serve) as up:
        server = await gateway(guarded(up.url))
        yield server.port


async def test_a_final_response_cannot_set_our_cookie(gateway: Start, connect: Connect) -> None:
    response = b"HTTP/1.1 200 OK\r\n" + TOSS + b"Content-Length: 2\r\n\r\nok"
    async with tossing(gateway, response) as port:
        c = await connect(port)
        await c.send(get())
        r = await c.read_response()
    assert (r.status, r.body) == (200, b"ok")
    assert [v for n, v in r.headers if n == "set-cookie"] == ["theme=dark"]


async def test_early_hints_cannot_set_our_cookie(gateway: Start, connect: Connect) -> None:
    response = (
        b"HTTP/1.1 103 Early Hints\r\n" + TOSS + b"Link: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n"
    )
    async with tossing(gateway, response) as port:
        c = await connect(port)
        await c.send(get())
        head = await c.reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 103 ")
    assert b"lychgate" not in head.lower()
    assert b"theme=dark" in head


async def test_a_switching_response_cannot_set_our_cookie(gateway: Start, connect: Connect) -> None:
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" + TOSS + b"\r\n"
    )
    async with tossing(gateway, response) as port:
        c = await connect(port)
        await c.send(
            get(
                extra="Connection: Upgrade\r\nUpgrade: websocket\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            )
        )
        head = await c.reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"lychgate" not in head.lower()
    assert b"theme=dark" in head
