"""Forwarding through the engine against real upstreams (lychgate.gateway.http.proxy)."""

from __future__ import annotations

import asyncio
import functools
import socket
import struct

import httpx
import pytest

from gateway.client import get
from gateway.conftest import Answers, Connect, RawRoute, Start, assert_cut, forward_to
from gateway.upstreams import Reply, Seen, http_upstream, raw_upstream, read_head
from gateway.waiting import eventually
from lychgate.gateway.http import Limits
from lychgate.gateway.types import Decision, Forward, RequestHead, Respond, Upstream
from lychgate.ids import AppSlug

WIKI = AppSlug("wiki")

pytestmark = pytest.mark.loopback


async def test_get_is_forwarded_with_host_and_keep_alive(gateway: Start) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as client:
            for i in range(3):
                r = await client.get(f"/a/{i}?q=1", headers={"host": "app.localhost"})
                assert r.status_code == 200
                assert r.text == f"GET /a/{i}?q=1 0"
                assert r.headers["x-upstream"] == "echo"
        assert [s.header("host") for s in up.seen] == ["app.localhost"] * 3
        assert up.connections == 1  # the pool reused one upstream connection
        assert gw.stats.requests_total == 3


async def test_forward_target_and_headers_are_what_is_sent(gateway: Start) -> None:
    async with http_upstream() as up:

        def handler(head: RequestHead) -> Decision:
            headers = (("host", "internal"), ("x-lychgate-user", "alice"))
            return Forward(Upstream(up.url), "/normalized?x=1", headers, app=None)

        gw = await gateway(handler)
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{gw.port}/raw/../path", headers={"x-evil": "1"})
        seen = up.seen[0]
        assert seen.target == "/normalized?x=1"
        assert seen.header("host") == "internal"
        assert seen.header("x-lychgate-user") == "alice"
        assert seen.header("x-evil") is None
        assert seen.header("connection") == "keep-alive"


async def test_hop_by_hop_request_headers_are_not_forwarded(
    gateway: Start, connect: Connect
) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(
            get(
                "/",
                extra="Connection: x-private, keep-alive\r\nX-Private: 1\r\nKeep-Alive: 5\r\n"
                "TE: trailers\r\nTrailer: x\r\nProxy-Connection: keep-alive\r\nX-End: 1\r\n",
            )
        )
        assert (await c.read_response()).status == 200
        names = {k for k, _ in up.seen[0].headers}
        assert names.isdisjoint({"x-private", "keep-alive", "te", "trailer", "proxy-connection"})
        assert "x-end" in names


async def test_hop_by_hop_response_headers_are_stripped(gateway: Start, connect: Connect) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.send(
            200,
            b"ok",
            [
                ("connection", "x-secret"),
                ("x-secret", "internal"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "h2c"),
                ("trailer", "x-t"),
                ("x-kept", "1"),
            ],
        )

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        names = {k for k, _ in r.headers}
        assert names.isdisjoint(
            {"x-secret", "keep-alive", "proxy-connection", "upgrade", "trailer"}
        )
        assert r.header("x-kept") == "1"
        assert r.header("connection") is None
        assert r.body == b"ok"


async def test_chunked_request_and_response_pass_through(gateway: Start, connect: Connect) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.head(200, [("content-type", "text/plain")])  # no length: h11 chunks it
        for part in (b"alpha-", b"beta-", seen.body):
            await reply.body(part)
        await reply.end()

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(
            b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        r = await c.read_response()
        assert r.header("transfer-encoding") == "chunked"
        assert r.body == b"alpha-beta-abcdefg"
        assert up.seen[0].header("transfer-encoding") == "chunked"
        assert up.seen[0].body == b"abcdefg"
        assert up.seen[0].header("x-trailer") is None  # trailers are dropped
        await c.send(get("/after"))  # the connection is still in step
        assert (await c.read_response()).status == 200


async def test_content_length_body_is_passed_through(gateway: Start) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.send(201, seen.body[::-1])

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        async with httpx.AsyncClient() as client:
            r = await client.put(f"http://127.0.0.1:{gw.port}/", content=b"0123456789" * 1000)
        assert r.status_code == 201
        assert r.content == (b"0123456789" * 1000)[::-1]
        assert up.seen[0].header("content-length") == "10000"


async def test_head_response_ends_at_its_head(gateway: Start, connect: Connect) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        if seen.method == "HEAD":
            await reply.head(200, [("content-length", "1234")])
            await reply.end()
        else:
            await reply.send(200, b"x" * 1234)

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        for _ in range(2):  # a HEAD, then a GET, on the same client connection
            await c.send(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n")
            r = await c.read_response(head_request=True)
            assert (r.status, r.header("content-length")) == (200, "1234")
            await c.send(get("/g"))
            r = await c.read_response()
            assert len(r.body) == 1234
        # An upstream connection that answered a HEAD is never reused: the first HEAD's, then
        # the first GET's (the second HEAD took it), then one for the second GET.
        assert up.connections == 3


async def test_head_after_chunked_upstream_head(gateway: Start, connect: Connect) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await c.read_response(head_request=True)).status == 200
        await c.send(get())
        assert (await c.read_response()).body == b"ok"
        assert up.connections == 2  # never reused after a HEAD


@pytest.mark.parametrize("status", [204, 304])
async def test_no_content_responses(gateway: Start, connect: Connect, status: int) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.head(status, [("etag", '"v1"')])
        await reply.end()

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get() + get())
        for _ in range(2):
            r = await c.read_response()
            assert (r.status, r.header("etag")) == (status, '"v1"')
            assert r.header("transfer-encoding") is None
        assert up.connections == 1


async def test_interim_responses_100_dropped_103_relayed(gateway: Start, connect: Connect) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.info(100)
        await reply.info(103, [("link", "</style.css>; rel=preload")])
        await reply.send(200, b"final")

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        first = await c.read_response()
        assert (first.status, first.header("link")) == (103, "</style.css>; rel=preload")
        final = await c.read_response()
        assert (final.status, final.body) == (200, b"final")


async def test_expect_100_continue_is_answered_before_the_body(
    gateway: Start, connect: Connect
) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.send(200, seen.body)

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(
            b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await c.read_response()
        assert interim.status == 100
        await c.send(b"hello")
        r = await c.read_response()
        assert (r.status, r.body) == (200, b"hello")
        assert up.seen[0].header("expect") is None  # answered here, not forwarded


async def test_expect_100_continue_too_large_is_413_without_reading(
    gateway: Start, connect: Connect
) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url), limits=Limits(max_body_bytes=1000))
        c = await connect(gw.port)
        await c.send(
            b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        r = await c.read_response()
        assert (r.status, r.header("connection")) == (413, "close")
        assert not up.seen


async def test_oversize_content_length_is_413(gateway: Start, connect: Connect) -> None:
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url), limits=Limits(max_body_bytes=1000))
        c = await connect(gw.port)
        await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001)
        assert (await c.read_response()).status == 413
        assert not up.seen


async def test_forward_max_body_overrides_the_listener(gateway: Start, connect: Connect) -> None:
    async with http_upstream() as up:

        def handler(head: RequestHead) -> Decision:
            return Forward(Upstream(up.url), head.target, head.headers, None, max_body_bytes=10)

        gw = await gateway(handler)
        c = await connect(gw.port)
        await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n" + b"x" * 11)
        assert (await c.read_response()).status == 413


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """The content of a chunked message body, and whether its last chunk arrived."""
    content = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(content), True
        content += rest[:size]
        body = rest[size + 2 :]
    return bytes(content), False


async def _record_until_cut(
    got: bytearray, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """An upstream that never answers: it keeps what it receives until the gateway cuts it."""
    while data := await reader.read(65536):
        got += data


async def test_oversize_chunked_body_is_413(gateway: Start, connect: Connect) -> None:
    got = bytearray()
    async with raw_upstream(functools.partial(_record_until_cut, got)) as up:
        gw = await gateway(forward_to(up.url), limits=Limits(max_body_bytes=1000))
        c = await connect(gw.port)
        await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        await c.send(b"3e8\r\n" + b"x" * 1000 + b"\r\n")  # exactly the limit: streamed up
        await eventually(lambda: _dechunk(bytes(got).partition(b"\r\n\r\n")[2])[0] == b"x" * 1000)
        await c.send(b"1\r\ny\r\n0\r\n\r\n")  # one byte over
        r = await c.read_response()
        assert (r.status, r.header("connection")) == (413, "close")
        await c.read_until_closed()
        await eventually(lambda: not up.writers)  # the gateway cut the upstream connection
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"POST / HTTP/1.1\r\n")
    assert b"transfer-encoding: chunked" in head
    # The upstream got the content up to the limit, never the byte over it nor the last chunk:
    # it cannot mistake a cut upload for a complete one.
    assert _dechunk(body) == (b"x" * 1000, False)
    assert up.connections == 1


async def test_bad_chunk_after_the_head_was_forwarded_is_400(
    gateway: Start, connect: Connect
) -> None:
    # SECURITY.md item 8. The head is valid, so it is decided on and forwarded before the bad
    # chunk-size line arrives; the framing error then still answers 400 and closes, and the
    # upstream is cut mid-message (test_connection covers the same bytes in one packet, where
    # the handler never sees the request at all).
    got = bytearray()
    async with raw_upstream(functools.partial(_record_until_cut, got)) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        await eventually(lambda: b"\r\n\r\n" in got)
        await c.send(b"3\nabc\r\n0\r\n\r\n")  # chunk-size line ended by a bare LF
        r = await c.read_response()
        assert (r.status, r.header("connection"), r.body) == (400, "close", r.page())
        await c.read_until_closed()
        await eventually(lambda: not up.writers)
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"POST / HTTP/1.1\r\n")
    assert body == b""  # nothing of the badly framed content went up


async def test_upstream_down_is_502(gateway: Start, connect: Connect) -> None:
    async with http_upstream() as up:
        url = up.url
    gw = await gateway(forward_to(url))  # nothing listens there any more
    c = await connect(gw.port)
    await c.send(get())
    r = await c.read_response()
    assert r.status == 502
    assert r.body == r.page()  # no address, no exception text
    await c.send(get())  # the client connection survives an upstream failure
    assert (await c.read_response()).status == 502


async def test_an_error_page_ends_an_http10_keep_alive_connection(
    gateway: Start, connect: Connect
) -> None:
    # An HTTP/1.0 client keeps its connection only when the answer says so: an error page
    # that did not, on a connection kept open, would leave the two disagreeing.
    async with http_upstream() as up:
        url = up.url
    gw = await gateway(forward_to(url))
    c = await connect(gw.port)
    await c.send(b"GET / HTTP/1.0\r\nHost: test.localhost\r\nConnection: keep-alive\r\n\r\n")
    raw = await c.read_until_closed()
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 502 ")
    assert b"\r\nconnection: close" in head
    assert b"\r\ndate: " in head  # every response has one (RFC 9110 section 6.6.1)


async def test_an_error_page_for_head_has_no_content(gateway: Start, connect: Connect) -> None:
    # Content after the head of an answer to HEAD would be read by a keep-alive client as the
    # start of its next response (response desync): the page's head goes alone.
    async with http_upstream() as up:
        url = up.url
    gw = await gateway(forward_to(url))
    c = await connect(gw.port)
    await c.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get())
    r = await c.read_response(head_request=True)
    assert (r.status, r.header("content-length")) == (502, str(len(r.page())))
    r = await c.read_response()  # the next response starts right after that head
    assert (r.status, r.body) == (502, r.page())


async def test_bad_upstream_url_is_502(gateway: Start, connect: Connect) -> None:
    gw = await gateway(forward_to("ftp://nope"))
    c = await connect(gw.port)
    await c.send(get())
    assert (await c.read_response()).status == 502


async def test_connect_timeout_is_504(gateway: Start, connect: Connect) -> None:
    # A listener that never accepts, with its backlog full: new handshakes never complete.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        _, filler = await asyncio.open_connection("127.0.0.1", port)
        try:
            gw = await gateway(forward_to(f"http://127.0.0.1:{port}", connect_timeout=0.2))
            c = await connect(gw.port)
            await c.send(get())
            r = await c.read_response()
            assert (r.status, r.body) == (504, r.page())
        finally:
            filler.close()


async def test_expect_100_continue_with_a_local_answer_closes(
    gateway: Start, connect: Connect
) -> None:
    gw = await gateway(lambda head: Respond(401, (), b"sign in first"))
    c = await connect(gw.port)
    await c.send(b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    r = await c.read_response()  # no 100 Continue first: the content is not wanted
    assert (r.status, r.header("connection")) == (401, "close")


async def test_slow_upstream_is_504(gateway: Start, connect: Connect) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read()  # silent until the gateway gives up

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url, read_timeout=0.2))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (504, r.page())


async def test_read_timeout_is_between_reads_not_total(gateway: Start, connect: Connect) -> None:
    # 1.5 s in all, a byte every 0.1 s, against a read timeout of 1 s: ten times each gap, so
    # that only a stall of most of a second on a loaded machine would look like silence.
    body = b"abcdefghijklmno"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for b in body:
            await asyncio.sleep(0.1)
            writer.write(bytes([b]))
        await reader.read()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url, read_timeout=1.0))
        loop = asyncio.get_running_loop()
        c = await connect(gw.port)
        started = loop.time()
        await c.send(get())
        assert (await c.read_response()).body == body
        assert loop.time() - started >= 1.0  # longer in all than the timeout


async def _read_all_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers once it has the whole (Content-Length) request."""
    head = await read_head(reader)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    await asyncio.sleep(1)


@pytest.mark.parametrize(
    ("pieces", "status", "reason"),
    [
        # The read timeout is the upstream's silence while it has what it needs to answer:
        # an upload that keeps moving for longer (1.5 s here, a piece every 0.1 s, against
        # 1 s) used to get a 504.
        (b"0123456789abcde", 200, ""),
        # Nothing from the client nor the upstream for the whole timeout, the content
        # unfinished: the client stopped, so it gets a 408, and no upstream failure counts.
        (b"01234", 408, "request content stalled: nothing from the client or the upstream"),
    ],
    ids=["moving", "stalled"],
)
async def test_an_upload_is_timed_by_its_gaps_not_its_length(
    gateway: Start, connect: Connect, pieces: bytes, status: int, reason: str
) -> None:
    async with raw_upstream(_read_all_then_answer) as up:
        answers = Answers()
        gw = await gateway(forward_to(up.url, read_timeout=1.0), on_response=answers)
        c = await connect(gw.port)
        await c.send(b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 15\r\n\r\n")
        for piece in pieces:
            await asyncio.sleep(0.1)
            await c.send(bytes([piece]))
        r = await c.read_response()
        assert r.status == status
        if status == 200:
            assert r.body == b"0123456789abcde"
        else:
            assert r.header("connection") == "close"
        assert gw.upstream_failures == {}
    assert answers.seen == [(status, reason)]


async def test_an_upstream_that_stops_reading_an_upload_is_a_504_not_the_clients_408(
    gateway: Start, connect: Connect
) -> None:
    # The client kept sending; the gateway stopped reading it because the app took nothing
    # more. It used to get a 408 (which invites a resend) and no upstream failure counted.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(30)  # reads nothing more, answers nothing

    async with raw_upstream(serve) as up:

        def handler(head: RequestHead) -> Decision:
            return Forward(Upstream(up.url, read_timeout=1.0), head.target, head.headers, app=WIKI)

        answers = Answers()
        gw = await gateway(handler, on_response=answers)
        c = await connect(gw.port)
        size = 64 * 1024 * 1024  # far more than the sockets' buffers hold
        await c.send(b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"x" * (1024 * 1024)

        async def upload() -> None:
            try:
                for _ in range(size // len(piece)):
                    await c.send(piece)
            except ConnectionError:
                pass  # the gateway answered and closed

        sending = asyncio.create_task(upload())
        try:
            r = await c.read_response()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        assert r.status == 504
        assert gw.upstream_failures == {(WIKI, "read_timeout"): 1}
    assert answers.seen == [(504, "upstream read timed out")]


async def test_a_read_timeout_is_counted_as_read_timeout(gateway: Start, connect: Connect) -> None:
    # The metric's documented kind: an alert on kind="read_timeout" must fire.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read()  # silent until the gateway gives up

    async with raw_upstream(serve) as up:

        def handler(head: RequestHead) -> Decision:
            return Forward(Upstream(up.url, read_timeout=0.2), head.target, head.headers, app=WIKI)

        gw = await gateway(handler)
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 504
        assert gw.upstream_failures == {(WIKI, "read_timeout"): 1}


async def test_upstream_stalls_mid_body_cuts_the_client(gateway: Start, connect: Connect) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await reader.read()  # silent until the gateway gives up

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url, read_timeout=0.2))
        c = await connect(gw.port)
        await c.send(get())
        data = await c.read_until_closed()
        assert data.startswith(b"HTTP/1.1 200 OK")
        assert data.endswith(b"partial")  # cut short, never padded or completed


async def test_upstream_closes_mid_body_cuts_the_client(raw_route: RawRoute) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()

    async with raw_route(serve) as (c, _):
        await c.send(get())
        assert_cut(await c.read_until_closed(), b"hello")


async def test_garbage_from_upstream_is_502(gateway: Start, connect: Connect) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 502


async def test_close_delimited_upstream_body_is_rechunked(gateway: Start, connect: Connect) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.header("transfer-encoding"), r.body) == ("chunked", b"until the end")
        await c.send(get())  # the client's connection stays usable
        assert (await c.read_response()).body == b"until the end"
        assert up.connections == 2


async def test_a_reset_cuts_a_close_delimited_body(raw_route: RawRoute) -> None:
    # A clean close ends such a body; a reset means it was cut (RFC 9112 section 8), and the
    # client must not get a response that looks whole.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial-body")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a close with SO_LINGER 0: an RST, not a FIN

    async with raw_route(serve) as (c, _):
        await c.send(get())
        assert_cut(await c.read_until_closed(), b"partial-body")


async def test_http10_client_gets_close_delimited_body(gateway: Start, connect: Connect) -> None:
    async def app(seen: Seen, reply: Reply) -> None:
        await reply.head(200)
        await reply.body(b"streamed")
        await reply.end()

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
        raw = await c.read_until_closed()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"chunked" not in head.lower()
        assert b"connection: close" in head.lower()
        assert body == b"streamed"


async def _read_to_the_end(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(10):
        while await reader.read(65536):
            pass


@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_an_http10_client_is_reset_when_the_upstream_cuts_the_body(
    raw_route: RawRoute, framing: str
) -> None:
    # Its content ends at the close, so a FIN would make the part it got look whole: only a
    # reset tells it otherwise (RFC 9112 section 8).
    head = (
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        if framing == "chunked"
        else b"\r\nhello"
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + head)
        await writer.drain()
        await asyncio.sleep(0.05)
        if framing == "close":  # a clean close would end it whole: cut it with a reset
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async with raw_route(serve) as (c, _):
        await c.send(b"GET / HTTP/1.0\r\nHost: test.localhost\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            await _read_to_the_end(c.reader)


async def test_reused_connection_dying_unanswered_is_retried(
    gateway: Start, connect: Connect
) -> None:
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_head(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)  # the next request on this connection: closed unanswered,
        # as when an upstream's keep-alive timeout races our reuse

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        for _ in range(3):
            await c.send(get())
            assert (await c.read_response()).body == b"ok"
        assert served == 3
        assert up.connections == 3


async def test_non_idempotent_request_is_not_retried(gateway: Start, connect: Connect) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).body == b"ok"
        await c.send(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await c.read_response()).status == 502


async def test_header_injection_via_forward_headers_is_refused(
    gateway: Start, connect: Connect
) -> None:
    async with http_upstream() as up:

        def handler(head: RequestHead) -> Decision:
            bad = (("host", "h"), ("x-lychgate-name", "eve\r\nx-lychgate-admin: 1"))
            return Forward(Upstream(up.url), "/", bad, app=None)

        gw = await gateway(handler)
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).status == 500
        assert not up.seen


async def test_sse_events_arrive_as_they_are_produced(gateway: Start, connect: Connect) -> None:
    second = asyncio.Event()

    async def app(seen: Seen, reply: Reply) -> None:
        await reply.head(
            200, [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        )
        await reply.body(b"data: one\n\n")
        await second.wait()
        await reply.body(b"data: two\n\n")
        await reply.end()

    async with http_upstream(app) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get("/events", extra="Accept: text/event-stream\r\n"))
        head = await c.reader.readuntil(b"\r\n\r\n")
        assert b"text/event-stream" in head
        async with asyncio.timeout(10):
            first = await c.reader.readuntil(b"\n\n\r\n")
        assert b"data: one" in first  # arrived while the upstream still holds the second
        second.set()
        async with asyncio.timeout(10):
            rest = await c.reader.readuntil(b"0\r\n\r\n")
        assert b"data: two" in rest


async def test_unix_socket_upstream(gateway: Start, connect: Connect, tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "up.sock"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(handle, str(path))
    try:
        gw = await gateway(forward_to(f"unix:{path}"))
        c = await connect(gw.port)
        await c.send(get())
        assert (await c.read_response()).body == b"unix"
    finally:
        server.close()
        await server.wait_closed()


async def test_on_response_hook_sees_app_status_and_duration(gateway: Start) -> None:
    calls: list[tuple[object, int, float]] = []
    async with http_upstream() as up:

        def handler(head: RequestHead) -> Decision:
            return Forward(Upstream(up.url), head.target, head.headers, app="wiki")  # type: ignore[arg-type]

        gw = await gateway(
            handler,
            on_response=lambda head, app, status, d, why, who, rid: calls.append((app, status, d)),
        )
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{gw.port}/")
        assert len(calls) == 1
        app, status, duration = calls[0]
        assert (app, status) == ("wiki", 200)
        assert duration > 0  # timed, in seconds (how fast is the benchmark's to say)


async def test_durations_are_finer_than_a_millisecond(gateway: Start, connect: Connect) -> None:
    # uvloop's clock ticks in whole milliseconds: a local answer timed by it took 0 or 1 ms.
    durations: list[float] = []
    gw = await gateway(
        lambda head: Respond(204),
        on_response=lambda head, app, status, d, why, who, rid: durations.append(d),
    )
    c = await connect(gw.port)
    for _ in range(20):
        await c.send(get())
        await c.read_response()
    assert len(durations) == 20
    assert any(abs(d * 1000 - round(d * 1000)) > 1e-6 for d in durations)
