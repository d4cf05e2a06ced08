"""How an upstream frames its response (RFC 9112 section 6), over real loopback sockets.

A response whose framing two parsers could read differently is refused with a 502 before any
of it reaches the client, and its connection is never used again. A response framed well
enough to deliver, but by an upstream that broke a rule around it (content on a 204, bytes
after the end, an answer before the request was whole), is delivered, and its connection is
closed instead of pooled. Each test checks what the client read, byte for byte where it
matters, and whether the next request needed a new upstream connection.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.client import RawClient, get
from gateway.conftest import Connect, Start, forward_to
from gateway.upstreams import Raw, raw_upstream, read_head
from gateway.waiting import PATIENCE

pytestmark = pytest.mark.loopback

REAL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"  # what a healthy upstream says
EVIL = b"HTTP/1.1 200 OK\r\nX-Injected: 1\r\nContent-Length: 4\r\n\r\nEVIL"
KEEP = b"Connection: keep-alive\r\n"


def first_then_real(first: bytes, *, after: bytes = b"") -> tuple[Raw, asyncio.Event]:
    """An upstream whose first connection answers its first request with ``first`` (then, once
    the next request arrives on it, if one does, ``after``), and that answers every other
    request with :data:`REAL`. The event is set when the first connection is closed by the
    gateway."""
    dropped = asyncio.Event()
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first_connection = connections == 1
        answer = first if first_connection else REAL
        while True:
            try:
                await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                if first_connection:  # closed, or reset if it left some of ours unread
                    dropped.set()
                raise
            writer.write(answer)
            await writer.drain()
            answer = after if first_connection and after else REAL

    return serve, dropped


async def _then_real(c: RawClient) -> None:
    """The client's next request is answered by a healthy upstream connection."""
    await c.send(get())
    r = await c.read_response()
    assert (r.status, r.body) == (200, b"real")


# -- faulty framing: 502, nothing of it relayed, the connection dropped ---------------------

FAULTY = {
    # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, even chunked,
    # even beside a Content-Length. An HTTP/1.0 recipient ignores Transfer-Encoding.
    "http10_chunked": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n" + KEEP + b"\r\n"
    b"4\r\nEVIL\r\n0\r\n\r\n",
    "http10_chunked_length": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 14\r\n" + KEEP + b"\r\n4\r\nEVIL\r\n0\r\n\r\n",
    "http10_gzip": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n" + KEEP + b"\r\nEVIL",
    # RFC 9112 section 6.3 item 3: both framings "ought to be handled as an error" (nginx
    # refuses them from upstreams since 1.23.0): never a Transfer-Encoding that wins.
    "length_then_chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n4\r\nEVIL\r\n0\r\n\r\n",
    "chunked_then_length": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 4\r\n\r\n4\r\nEVIL\r\n0\r\n\r\n",
    "identity_and_length": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n"
    b"Content-Length: 4\r\n\r\nEVIL",
    # A final coding other than chunked (RFC 9112 section 6.3 item 4: read to the close): the
    # gateway forwards no TE, so no client asked for the coding, and none is undone here.
    "gzip_alone": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nEVIL",
    "chunked_then_gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nEVIL",
    "gzip_then_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"4\r\nEVIL\r\n0\r\n\r\n",
    # Content-Length (RFC 9110 section 8.6, RFC 9112 section 6.3 item 5): one decimal number.
    # Several fields or a list are refused even when the values agree (llhttp's choice; the
    # RFC allows either, and nothing legitimate sends them).
    "two_lengths_differ": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\nEVIL",
    "two_lengths_same": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nEVIL",
    "length_list_differ": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 4\r\n\r\nEVIL",
    "length_list_same": b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\nEVIL",
    "length_plus": b"HTTP/1.1 200 OK\r\nContent-Length: +4\r\n\r\nEVIL",
    "length_minus": b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nEVIL",
    "length_hex": b"HTTP/1.1 200 OK\r\nContent-Length: 0x4\r\n\r\nEVIL",
    "length_words": b"HTTP/1.1 200 OK\r\nContent-Length: four\r\n\r\nEVIL",
    "length_empty": b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nEVIL",
    "length_space_inside": b"HTTP/1.1 200 OK\r\nContent-Length: 1 3\r\n\r\nEVIL",
    "length_over_64_bits": b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\nEVIL",
    # Fits llhttp's 64 unsigned bits but no signed 64-bit integer, which is what most clients
    # and caches (Go, curl, Chromium) read it into: they would frame it otherwise, or refuse.
    "length_over_int64": b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nEVIL",
    # Versions llhttp reads but that are no HTTP/1.x status line on this connection.
    "http09": b"HTTP/0.9 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
    "http20": b"HTTP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
    # A 1xx whose "content" is a response of its own, and one followed by junk.
    "interim_with_length": b"HTTP/1.1 150 X\r\nContent-Length: 49\r\n\r\n" + EVIL + REAL,
    "continue_then_junk": b"HTTP/1.1 100 Continue\r\n\r\nEVIL\r\n\r\n",
}


UNFRAMED = {"gzip_alone", "gzip_then_chunked"}  # the rest: "malformed"


@pytest.mark.parametrize("name", list(FAULTY))
async def test_faulty_framing_is_502_and_the_connection_is_dropped(
    gateway: Start, connect: Connect, name: str
) -> None:
    serve, dropped = first_then_real(FAULTY[name])
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (502, r.page())
        assert b"EVIL" not in r.raw_head
        kind = "unframed" if name in UNFRAMED else "malformed"
        assert gw.upstream_failures == {(None, kind): 1}
        async with asyncio.timeout(PATIENCE):
            await dropped.wait()
        await _then_real(c)  # the client's connection is still in step
        assert up.connections == 2


async def test_early_hints_then_junk_is_103_then_502(gateway: Start, connect: Connect) -> None:
    # The 103 is relayed as it comes (RFC 8297); what follows it is no response: a 502 ends
    # the exchange, and the client reads two well-framed heads, not the junk.
    serve, dropped = first_then_real(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nEVIL\r\n\r\n")
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        hints = await c.read_response()
        assert (hints.status, hints.header("link")) == (103, "</a>")
        r = await c.read_response()
        assert (r.status, r.body) == (502, r.page())
        async with asyncio.timeout(PATIENCE):
            await dropped.wait()
        await _then_real(c)
        assert up.connections == 2


@pytest.mark.parametrize(
    ("request_line", "status"),
    [(b"HEAD / HTTP/1.1", 200), (b"GET / HTTP/1.1", 204), (b"GET / HTTP/1.1", 304)],
    ids=["head", "no_content", "not_modified"],
)
async def test_http10_transfer_encoding_is_refused_even_without_content(
    gateway: Start, connect: Connect, request_line: bytes, status: int
) -> None:
    # RFC 9112 section 6.1 makes no exception for responses that have no content.
    response = b"HTTP/1.0 %d X\r\nTransfer-Encoding: chunked\r\n" % status + KEEP + b"\r\n"
    serve, dropped = first_then_real(response)
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(request_line + b"\r\nHost: h\r\n\r\n")
        r = await c.read_response(head_request=request_line.startswith(b"HEAD"))
        assert r.status == 502
        async with asyncio.timeout(PATIENCE):
            await dropped.wait()
        await _then_real(c)
        assert up.connections == 2


async def test_the_largest_signed_64_bit_length_is_relayed(
    gateway: Start, connect: Connect
) -> None:
    # The limit above is exact: 2**63 - 1 is a length every client can hold.
    big = b"9223372036854775807"
    serve, _ = first_then_real(b"HTTP/1.1 200 OK\r\nContent-Length: " + big + b"\r\n\r\nstart")
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        async with asyncio.timeout(PATIENCE):
            head = await c.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\ncontent-length: " + big + b"\r\n" in head
            assert await c.reader.readexactly(5) == b"start"


# -- delivered, but never pooled ----------------------------------------------------------


async def test_http10_keep_alive_with_a_length_is_reused(gateway: Start, connect: Connect) -> None:
    # The control for the HTTP/1.0 refusals above: a plain HTTP/1.0 keep-alive answer is fine.
    serve, _ = first_then_real(b"HTTP/1.0 200 OK\r\n" + KEEP + b"Content-Length: 4\r\n\r\nok10")
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (200, b"ok10")
        await _then_real(c)
        assert up.connections == 1


@pytest.mark.parametrize("version", [b"0.9", b"2.0"])
async def test_another_version_kept_alive_with_a_length_is_framed_by_it(
    gateway: Start, connect: Connect, version: bytes
) -> None:
    # llhttp reads these as 1.0: kept alive only with a length, which frames them unambiguously
    # (the version is looked at only where it could change the framing: it costs a format).
    answer = b"HTTP/" + version + b" 200 OK\r\n" + KEEP + b"Content-Length: 4\r\n\r\nsome"
    serve, _ = first_then_real(answer)
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (200, b"some")
        assert r.raw_head.startswith(b"HTTP/1.1 200 ")  # the gateway's own status line
        await _then_real(c)
        assert up.connections == 1


NO_CONTENT_WITH_MORE = {
    # RFC 9110 sections 15.3.5 and 15.4.5: a 204 or 304 ends at its head, whatever it says.
    "length_and_bytes": (b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nEVIL", 204),
    "chunked_and_bytes": (
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nEVIL\r\n0\r\n\r\n",
        204,
    ),
    "response_after": (b"HTTP/1.1 204 No Content\r\n\r\n" + EVIL, 204),
    "not_modified_bytes": (b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n' + EVIL, 304),
}


@pytest.mark.parametrize(
    ("response", "status"), list(NO_CONTENT_WITH_MORE.values()), ids=list(NO_CONTENT_WITH_MORE)
)
async def test_bytes_after_a_response_without_content_are_never_a_response(
    gateway: Start, connect: Connect, response: bytes, status: int
) -> None:
    serve, dropped = first_then_real(response)
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (status, b"")
        assert (r.header("transfer-encoding"), r.header("x-injected")) == (None, None)
        async with asyncio.timeout(PATIENCE):
            await dropped.wait()
        await _then_real(c)
        assert up.connections == 2


@pytest.mark.parametrize(
    ("head", "late"),
    [
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n", b"EVIL"),
        (b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        (b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    ],
    ids=["no_content_length", "no_content_chunked", "not_modified_chunked"],
)
async def test_a_response_without_content_announcing_some_is_not_reused(
    gateway: Start, connect: Connect, head: bytes, late: bytes
) -> None:
    # The upstream sends the content it announced (RFC 9110 section 8.6 forbids the fields on a
    # 204) only once the next request came: by then it cannot be told from that request's
    # answer. The announcement alone keeps the connection out of the pool.
    serve, dropped = first_then_real(head + b"\r\n", after=late)
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (int(head[9:12]), b"")
        assert (r.header("content-length"), r.header("transfer-encoding")) == (None, None)
        await _then_real(c)
        async with asyncio.timeout(PATIENCE):
            await dropped.wait()
        assert up.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n",
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 1234\r\n',
    ],
    ids=["no_content_zero", "not_modified_length"],
)
async def test_a_response_without_content_and_no_sign_of_any_is_reused(
    gateway: Start, connect: Connect, head: bytes
) -> None:
    # The control for the test above: a 204's "Content-Length: 0" announces nothing, and a
    # 304's Content-Length is the representation's (RFC 9110 section 8.6), passed on.
    serve, _ = first_then_real(head + b"\r\n")
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get())
        r = await c.read_response()
        assert (r.status, r.body) == (int(head[9:12]), b"")
        assert r.header("content-length") == (None if b" 204 " in head else "1234")
        await _then_real(c)
        assert up.connections == 1


# -- an answer before the request was whole -------------------------------------------------


def early_answer(status_line: bytes, *, early: bool = True) -> tuple[Raw, asyncio.Event]:
    """An upstream whose first connection (if ``early``) answers at the end of the request
    head, content or none (an app refusing an upload, 413); every other connection reads
    whole requests."""
    dropped = asyncio.Event()
    connections = 0 if early else 1

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await read_head(reader)
            writer.write(status_line + b"\r\nContent-Length: 4\r\n\r\nnope")
            await writer.drain()
            try:
                while await reader.read(65536):  # what it was sent, until the gateway closes
                    pass
            finally:
                dropped.set()  # closed, or reset (ConnectionResetError)
            return
        while True:
            head = await read_head(reader)
            length = 0
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(REAL)
            await writer.drain()

    return serve, dropped


@pytest.mark.parametrize(
    "upload",
    [
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhalf.",
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhalf.\r\n",
    ],
    ids=["length", "chunked"],
)
async def test_an_answer_before_the_request_is_whole_is_not_reused(
    gateway: Start, connect: Connect, upload: bytes
) -> None:
    # The upstream has not read the rest of the content: whatever it makes of it (the start of
    # the next request, say) it would answer. The connection is closed, not pooled.
    serve, dropped = early_answer(b"HTTP/1.1 413 Content Too Large")
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(upload)
        r = await c.read_response()
        assert (r.status, r.body) == (413, b"nope")
        async with asyncio.timeout(PATIENCE):
            await dropped.wait()
        other = await connect(gw.port)
        await other.send(b"POST /next HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
        r = await other.read_response()
        assert (r.status, r.body) == (200, b"real")
        assert up.connections == 2


async def test_an_answer_after_the_whole_request_is_reused(
    gateway: Start, connect: Connect
) -> None:
    # The control for the test above: uploads answered after all their content are pooled.
    serve, _ = early_answer(b"", early=False)
    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        for _ in range(2):
            await c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nwhole.body")
            assert (await c.read_response()).body == b"real"
        assert up.connections == 1  # the second upload reused the first one's connection


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


async def test_an_answer_begun_before_the_request_is_whole_is_not_reused(
    gateway: Start, connect: Connect
) -> None:
    # An upstream that answers at the head and takes the content it did not read for its next
    # request (a "CL.0" server, as in James Kettle's "Browser-Powered Desync Attacks"): the
    # content sent once the answer has begun holds a request of its own, whose late answer
    # would be taken for the next request's. That the upstream runs it at all is its own bug,
    # which no proxy can see; a connection whose answer began early is just never pooled.
    # The upstream here reads that content only to stand for one that leaves it unread.
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await read_head(reader)
            await reader.readexactly(5)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n")
            await reader.readexactly(len(SMUGGLED))  # left unread, by the server it stands for
            writer.write(b"0\r\n\r\n")
            # ...which takes it for its next request, and is slow to answer it: the answer
            # comes once the gateway's next request has been sent, and is taken for its own.
            heads = [await read_head(reader), SMUGGLED]
        else:
            heads = []
        while True:
            head = heads.pop() if heads else await read_head(reader)
            target = head.split(b" ")[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
            await writer.drain()

    async with raw_upstream(serve) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        length = 5 + len(SMUGGLED)
        await c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\nxxxxx" % length)
        async with asyncio.timeout(PATIENCE):
            head = await c.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await c.reader.readuntil(b"early\r\n") == b"5\r\nearly\r\n"
        await c.send(SMUGGLED)  # the rest of the content, sent after the answer began
        async with asyncio.timeout(PATIENCE):
            assert await c.reader.readuntil(b"0\r\n\r\n") == b"0\r\n\r\n"
        await c.send(get("/mine"))
        r = await c.read_response()
        assert (r.status, r.body) == (200, b"/mine")  # not the answer to the smuggled request
        assert up.connections == 2
