"""Fuzzing the request side of the connection (lychgate.gateway.http.connection).

Whatever bytes arrive, in whatever pieces: nothing raises, the handler only sees what parsed,
every request it saw is answered in order, and an error page (if any) is the last thing sent.
"""

from __future__ import annotations

import asyncio

import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.fakes import FakeTransport, feed_client
from lychgate.gateway.http import Limits
from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.pool import UpstreamPool, unverified_client_context
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.types import Decision, RequestHead, Respond

ERRORS = {400, 405, 408, 413, 414, 417, 431, 505}


async def _drive(chunks: list[bytes], seen: list[RequestHead]) -> FakeTransport:
    def handler(head: RequestHead) -> Decision:
        seen.append(head)
        return Respond(200, (), head.method.encode())

    loop = asyncio.get_running_loop()
    ctx = ServerContext(
        loop=loop,
        handler=handler,
        limits=Limits(max_header_bytes=1024, max_headers=8, max_drain_bytes=64),
        pool=UpstreamPool(ssl_context=unverified_client_context()),
        tunnels=TunnelRegistry(),
        scheme="http",
    )
    return await feed_client(ctx, chunks, lambda: asyncio.sleep(0))


def _responses(out: bytes, seen: list[RequestHead]) -> list[int]:
    statuses: list[int] = []
    rest = out
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"truncated head: {head!r}"
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1.1 ")
        status = int(lines[0].split(b" ")[1])
        fields = dict(line.split(b": ", 1) for line in lines[1:])
        length = int(fields.get(b"content-length", b"0"))
        head_request = status == 200 and seen[len(statuses)].method == "HEAD"
        body, rest = (b"", rest) if head_request else (rest[:length], rest[length:])
        if status == 200:
            expected = seen[len(statuses)].method.encode()
            assert length == len(expected)
            assert body == (b"" if head_request else expected)
        statuses.append(status)
    return statuses


def _check(chunks: list[bytes]) -> None:
    seen: list[RequestHead] = []
    loop = uvloop.new_event_loop()
    try:
        transport = loop.run_until_complete(_drive(chunks, seen))
    finally:
        loop.close()
    statuses = _responses(bytes(transport.written), seen)
    oks = [s for s in statuses if s == 200]
    errors = [s for s in statuses if s != 200]
    assert len(oks) == len(seen)  # every request the handler saw was answered
    assert set(errors) <= ERRORS
    if errors:
        assert len(errors) == 1
        assert statuses[-1] in ERRORS  # nothing after an error page
    for head in seen:
        assert head.http_version in ("1.0", "1.1")
        assert not {"\r", "\n"} & set(head.target)
        for name, value in head.headers:
            assert name == name.lower()
            assert not {"\r", "\n", "\0"} & set(value)


PIECES = [
    b"GET / HTTP/1.1\r\n",
    b"HEAD /h HTTP/1.1\r\n",
    b"POST /p HTTP/1.1\r\n",
    b"GET / HTTP/1.0\r\n",
    b"GET http://x/ HTTP/1.1\r\n",
    b"Host: h\r\n",
    b"Host: other\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 100\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: upgrade\r\nUpgrade: websocket\r\n",
    b"X: a\r\n b\r\n",
    b"X: \x00\r\n",
    b"\r\n",
    b"\n",
    b"abc",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"0\r\n\r\n",
    b"zz\r\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(PIECES), max_size=14),
    st.lists(st.integers(min_value=1, max_value=40), max_size=10),
)
def test_structured_requests_in_any_pieces(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(data[at : at + cut])
        at += cut
    chunks.append(data[at:])
    _check([c for c in chunks if c])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=6))
def test_random_bytes(chunks: list[bytes]) -> None:
    _check(chunks)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_head(tail: bytes) -> None:
    _check([b"GET / HTTP/1.1\r\nHost: h\r\n", tail])
