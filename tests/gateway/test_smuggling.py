"""Request smuggling, as a property of the whole engine (SECURITY.md section 8).

Whatever framing a client tries (Content-Length beside Transfer-Encoding, duplicate or signed
lengths, odd codings, obs-fold, bare LF, bodies that hold a whole request, any split into
reads), the upstream must see exactly the requests that the handler decided to forward, in
order, and nothing else. The handler refuses every target under ``/deny``, and the bodies carry
requests for ``/deny``: if the engine's framing upstream ever differed from what llhttp parsed
on the client side, the upstream would read one of them as a request of its own. Upgrade
requests are mixed in, to an app that allows them (``/ws``) and to one that does not: the bytes
after an Upgrade head belong to the tunnel, and must never be parsed as requests either.

The upstream is h11, an independent parser, behind a fake transport: the engine's client
connection, exchange, pool connection and response parser are the real ones, and no socket is
involved, so hundreds of examples run in a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.fakes import FakeTransport
from lychgate.gateway.http import Limits
from lychgate.gateway.http.connection import ClientConnection
from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.pool import UpstreamPool, unverified_client_context
from lychgate.gateway.http.tunnel import TunnelRegistry
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.types import Decision, Forward, Handler, RequestHead, Respond, Upstream

UPSTREAM = Upstream("http://upstream.invalid")
SMUGGLED = b"GET /deny/smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


def ok(request: h11.Request) -> tuple[bytes, bool]:
    """A well-behaved upstream's answer: ``ok``, keep-alive."""
    body = b"" if request.method == b"HEAD" else b"ok"
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body, False


Answer = Callable[[h11.Request], tuple[bytes, bool]]


@dataclass
class Seen:
    """The upstream's side: what it parsed, (method, target, body) per request, and errors."""

    answer: Answer = ok  # the raw bytes sent back, and whether the upstream then closes
    cut: int = 0  # when not 0, answers arrive in reads of this many bytes
    pending: int = 0  # reads scheduled and not yet delivered
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class H11Upstream(FakeTransport):
    """The upstream's end of one pooled connection: h11 reads requests, answers each one."""

    def __init__(self, conn: UpstreamConnection, seen: Seen) -> None:
        super().__init__(conn)
        self.conn = conn
        self.seen = seen
        self.h11 = h11.Connection(h11.SERVER)
        self.request: h11.Request | None = None
        self.body = b""
        self.outbox = bytearray()
        self.sending = False
        self.close_after = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self._parse(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        super().writelines(list_of_data)
        self._parse(b"".join(list_of_data))

    def _parse(self, data: bytes) -> None:
        try:
            self.h11.receive_data(data)
            self._events()
        except h11.RemoteProtocolError as exc:
            self.seen.errors.append(str(exc))

    def _events(self) -> None:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, b""
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                request = self.request
                assert request is not None
                self.seen.requests.append(
                    (request.method.decode(), request.target.decode(), self.body)
                )
                # h11 only keeps the request side in step here; the answer is raw bytes.
                self.h11.send(h11.Response(status_code=204, headers=[]))
                self.h11.send(h11.EndOfMessage())
                self.h11.start_next_cycle()
                answer, close = self.seen.answer(request)
                self._deliver(answer, close)

    def _deliver(self, answer: bytes, close: bool) -> None:
        """Queue an answer: like TCP, the bytes arrive in order, in reads of ``seen.cut``."""
        self.outbox += answer
        self.close_after = self.close_after or close
        if not self.sending:
            self.sending = True
            self.seen.pending += 1
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self.seen.pending -= 1
        self.sending = False
        if self.closed:
            return
        cut = self.seen.cut or len(self.outbox)
        data = bytes(self.outbox[:cut])
        del self.outbox[:cut]
        if data:
            self.conn.data_received(data)
        if self.outbox:
            self._deliver(b"", close=False)
        elif self.close_after and not self.closed:
            self.closed = True
            self.conn.connection_lost(None)


class H11Pool(UpstreamPool):
    """A pool whose new connections reach an :class:`H11Upstream` instead of a socket."""

    def __init__(self, seen: Seen) -> None:
        super().__init__(ssl_context=unverified_client_context())
        self.seen = seen

    async def connect(self, upstream: Upstream) -> UpstreamConnection:
        conn = UpstreamConnection((upstream.url, upstream.verify_tls), self.batch, 256 * 1024)
        conn.connection_made(H11Upstream(conn, self.seen))
        return conn


Decided = list[tuple[str, str, bool]]  # method, target, and whether it was forwarded


def _handler(decided: Decided) -> Handler:
    def handle(head: RequestHead) -> Decision:
        forward = not head.path.startswith("/deny")
        decided.append((head.method, head.target, forward))
        if not forward:
            return Respond(403)
        upgrade = head.path.startswith("/ws")  # the app allows upgrades; /ok does not
        return Forward(UPSTREAM, head.target, (("host", "app"),), app=None, allow_upgrade=upgrade)

    return handle


async def _drive(chunks: list[bytes], seen: Seen, decided: Decided) -> bytes:
    loop = asyncio.get_running_loop()
    pool = H11Pool(seen)
    ctx = ServerContext(
        loop=loop,
        handler=_handler(decided),
        limits=Limits(max_header_bytes=2048, max_headers=16, max_drain_bytes=256),
        pool=pool,
        tunnels=TunnelRegistry(),
        scheme="http",
        batch=pool.batch,
    )
    client = ClientConnection(ctx)
    transport = FakeTransport(client)
    client.connection_made(transport)
    for chunk in chunks:
        if transport.closed:
            break
        client.data_received(chunk)
        await _settle(seen)
    await _settle(seen)
    client.connection_lost(None)
    return bytes(transport.written)


async def _settle(seen: Seen) -> None:
    """Run the loop until the upstream has nothing left to deliver, and the engine nothing left
    to do about it (the pool's connect, the next dispatch) for a few turns."""
    quiet = 0
    for _ in range(10_000):
        quiet = 0 if seen.pending else quiet + 1
        if quiet > 4:
            return
        await asyncio.sleep(0)
    raise AssertionError("the exchange never settled")


def _run(chunks: list[bytes], answer: Answer = ok, cut: int = 0) -> tuple[Seen, Decided, bytes]:
    """What the upstream saw, what the handler decided, and what the client was sent."""
    seen, decided = Seen(answer, cut), Decided()
    loop = uvloop.new_event_loop()
    try:
        out = loop.run_until_complete(_drive(chunks, seen, decided))
    finally:
        loop.close()
    return seen, decided, out


# -- what a client may send -----------------------------------------------------------------

BODIES = [b"", b"abc", SMUGGLED, b"0\r\n\r\n" + SMUGGLED, b"x" * 40 + SMUGGLED]


def _chunked(body: bytes, ext: bool) -> bytes:
    if not body:
        return b"0\r\n\r\n"
    mid = len(body) // 2
    parts = [p for p in (body[:mid], body[mid:]) if p]
    suffix = b";a=b" if ext else b""
    return b"".join(b"%x%s\r\n%s\r\n" % (len(p), suffix, p) for p in parts) + b"0\r\n\r\n"


def _framing(kind: str, body: bytes) -> tuple[list[bytes], bytes]:
    """Extra field lines and the content, for one way of framing ``body``."""
    n = len(body)
    te = b"Transfer-Encoding: chunked"
    match kind:
        case "none":
            return [], b""
        case "length":
            return [b"Content-Length: %d" % n], body
        case "length-short":
            return [b"Content-Length: %d" % (n + 5)], body
        case "length-long":
            return [b"Content-Length: %d" % max(n - 5, 0)], body
        case "chunked":
            return [te], _chunked(body, ext=False)
        case "chunked-ext":
            return [te], _chunked(body, ext=True)
        case "both":
            return [b"Content-Length: %d" % n, te], _chunked(body, ext=False)
        case "both-raw":
            return [te, b"Content-Length: %d" % n], body
        case "dup-length":
            return [b"Content-Length: %d" % n, b"Content-Length: %d" % n], body
        case "dup-length-diff":
            return [b"Content-Length: %d" % n, b"Content-Length: %d" % (n + 1)], body
        case "length-list":
            return [b"Content-Length: %d, %d" % (n, n)], body
        case "length-plus":
            return [b"Content-Length: +%d" % n], body
        case "length-hex":
            return [b"Content-Length: 0x%x" % n], body
        case "length-space":
            return [b"Content-Length : %d" % n], body
        case "te-case":
            return [b"Transfer-Encoding: ChUnKeD"], _chunked(body, ext=False)
        case "te-double":
            return [b"Transfer-Encoding: chunked, chunked"], _chunked(body, ext=False)
        case "te-identity-last":
            return [b"Transfer-Encoding: chunked, identity"], body
        case "te-identity-first":
            return [b"Transfer-Encoding: identity, chunked"], _chunked(body, ext=False)
        case "te-unknown":
            return [b"Transfer-Encoding: xchunked"], _chunked(body, ext=False)
        case "te-split":
            return [b"Transfer-Encoding: gzip", te], _chunked(body, ext=False)
        case "te-fold":
            return [b"Transfer-Encoding:", b" chunked"], _chunked(body, ext=False)
        case "te-tab":
            return [b"Transfer-Encoding:\tchunked"], _chunked(body, ext=False)
        case "te-vertical-tab":
            return [b"Transfer-Encoding: \x0bchunked"], _chunked(body, ext=False)
        case "chunk-size-overflow":
            return [te], b"1" * 20 + b"\r\nabc\r\n0\r\n\r\n"
        case "chunk-bare-lf":
            return [te], b"3\nabc\n0\n\n"
    raise AssertionError(kind)


# Framings that a valid request may use (a wrong length only moves where the next request
# starts), and tricks that must be refused or read exactly as llhttp reads them.
FRAMINGS = ["none", "length", "length-short", "length-long", "chunked", "chunked-ext"]
TRICKS = [
    "both",
    "both-raw",
    "dup-length",
    "dup-length-diff",
    "length-list",
    "length-plus",
    "length-hex",
    "length-space",
    "te-case",
    "te-double",
    "te-identity-last",
    "te-identity-first",
    "te-unknown",
    "te-split",
    "te-fold",
    "te-tab",
    "te-vertical-tab",
    "chunk-size-overflow",
    "chunk-bare-lf",
]


@st.composite
def requests(draw: st.DrawFn, index: int) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE"]))
    path = draw(st.sampled_from([b"/ok", b"/ok", b"/deny", b"/ws"])) + b"/%d" % index
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    framing = draw(st.sampled_from(FRAMINGS) | st.sampled_from(TRICKS))
    fields, content = _framing(framing, draw(st.sampled_from(BODIES)))
    fields = [b"Host: h", *fields]
    fields += draw(
        st.lists(
            st.sampled_from(
                [
                    b"Connection: close",
                    b"Connection: keep-alive",
                    b"Expect: 100-continue",
                    b"X-Fold: a\r\n b",
                    b"Connection: upgrade\r\nUpgrade: websocket",
                    b"X-Empty:",
                ]
            ),
            max_size=2,
        )
    )
    order = draw(st.permutations(range(len(fields))))
    eol = draw(st.sampled_from([b"\r\n"] * 12 + [b"\n"]))
    lines = [method + b" " + path + b" " + version] + [fields[i] for i in order]
    return eol.join(lines) + b"\r\n\r\n" + content


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    count = draw(st.integers(min_value=1, max_value=4))
    data = b"".join(draw(requests(i)) for i in range(count))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6))))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


# -- the properties -------------------------------------------------------------------------


def _check(chunks: list[bytes]) -> None:
    seen, decided, out = _run(chunks)
    forwarded = [(method, target) for method, target, forward in decided if forward]
    assert seen.errors == [], f"the upstream could not parse what we sent: {seen.errors}"
    got = [(method, target) for method, target, _ in seen.requests]
    # Exactly what was decided on reached the upstream, in order: a forwarded request may still
    # be on its way when the client's connection ends, never one that was not forwarded.
    assert got == forwarded[: len(got)]
    assert len(forwarded) - len(got) <= 1
    assert not any(target.startswith("/deny") for _, target in got)
    # What the client reads is whole responses, one per request at most (and an error page).
    responses = _client_view(out, [method for method, _, _ in decided])
    assert len(responses) <= len(decided) + 1


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_the_upstream_sees_only_what_was_forwarded(chunks: list[bytes]) -> None:
    _check(chunks)


def test_a_body_that_holds_a_request_is_only_a_body() -> None:
    request = b"POST /ok/0 HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
    seen, decided, _ = _run([request + SMUGGLED])
    assert decided == [("POST", "/ok/0", True)]
    assert seen.requests == [("POST", "/ok/0", SMUGGLED)]


def test_content_length_beside_chunked_is_refused_before_the_upstream() -> None:
    head = b"POST /ok/0 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    seen, decided, out = _run([head + b"\r\n" + _chunked(SMUGGLED, ext=False) + SMUGGLED])
    assert decided == []
    assert seen.requests == []
    assert out.startswith(b"HTTP/1.1 400 ")


def test_a_chunked_body_reaches_the_upstream_whole() -> None:
    head = b"POST /ok/0 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    then = b"GET /ok/1 HTTP/1.1\r\nHost: h\r\n\r\n"
    seen, decided, out = _run([head + _chunked(SMUGGLED, ext=True), then])
    assert decided == [("POST", "/ok/0", True), ("GET", "/ok/1", True)]
    assert seen.requests == [("POST", "/ok/0", SMUGGLED), ("GET", "/ok/1", b"")]
    assert out.count(b"HTTP/1.1 200 ") == 2


# -- the other way: what an upstream may answer ------------------------------------------------

INJECTED = b"HTTP/1.1 200 OK\r\nX-Injected: 1\r\nContent-Length: 0\r\n\r\n"


def _response(kind: str, head_request: bool) -> tuple[bytes, bool]:
    """One way an upstream may answer; the content always holds a response of its own."""
    body = b"" if head_request else INJECTED
    n = len(INJECTED)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (n, INJECTED) if body else b""
    match kind:
        case "length":
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (n, body), False
        case "chunked":
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked, False
        case "close":
            return b"HTTP/1.1 200 OK\r\n\r\n" + INJECTED, True
        case "length-short":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + INJECTED[:3] + INJECTED, False
        case "both":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + (
                chunked
            ), False
        case "dup-length":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n%s" % (
                n,
                INJECTED,
            ), False
        case "no-content-with-content":
            return b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n%s" % (n, INJECTED), False
        case "not-modified-with-content":
            return b"HTTP/1.1 304 Not Modified\r\n\r\n" + INJECTED, False
        case "head-with-content":
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (n, INJECTED), False
        case "interim":
            return (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                + (_response("length", head_request)[0]),
                False,
            )
        case "coding-not-last":
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" + INJECTED, True
        case "bare-lf":
            return b"HTTP/1.1 200 OK\nContent-Length: 0\n\n" + INJECTED, False
        case "fold":
            return b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n" + INJECTED, False
        case "header-injection":
            return b"HTTP/1.1 200 OK\r\nX-A: a\rX-Injected: 1\r\nContent-Length: 0\r\n\r\n", False
    raise AssertionError(kind)


RESPONSES = [
    "length",
    "chunked",
    "close",
    "length-short",
    "both",
    "dup-length",
    "no-content-with-content",
    "not-modified-with-content",
    "head-with-content",
    "interim",
    "coding-not-last",
    "bare-lf",
    "fold",
    "header-injection",
]


def _answers(kinds: list[str]) -> Answer:
    """Answers each request with the next of ``kinds``, then with plain ``ok``."""
    left = list(kinds)

    def answer(request: h11.Request) -> tuple[bytes, bool]:
        if not left:
            return ok(request)
        return _response(left.pop(0), request.method == b"HEAD")

    return answer


def _client_view(
    out: bytes, methods: list[str]
) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """The complete responses a strict client parses from what we wrote, in order.

    h11 must know each request to frame its response (a HEAD's has no content): ``methods``
    are those the handler saw, in order; an error page answers a request it never saw.
    """
    client = h11.Connection(h11.CLIENT)
    responses: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
    while True:
        method = methods[len(responses)] if len(responses) < len(methods) else "GET"
        try:
            client.send(h11.Request(method=method, target="/", headers=[("host", "h")]))
            client.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return responses
        if out:
            client.receive_data(out)  # all that was written (no EOF: the client stays open)
            out = b""
        status, fields, body = 0, [], b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return responses
            if isinstance(event, h11.Response):
                status, fields = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                responses.append((status, fields, body))
                break
            elif isinstance(event, h11.ConnectionClosed):
                return responses
        try:
            client.start_next_cycle()
        except h11.LocalProtocolError:
            return responses


# Well-framed answers, whose content the client must get whole and unchanged.
FAITHFUL = ["length", "chunked", "close", "interim"]
METHODS = st.lists(st.sampled_from([b"GET", b"GET", b"HEAD"]), min_size=1, max_size=3)
CUTS = st.sampled_from([0, 1, 2, 3, 7, 16])


def _requests(methods: list[bytes]) -> list[bytes]:
    return [b"%s /ok/%d HTTP/1.1\r\nHost: h\r\n\r\n" % (m, i) for i, m in enumerate(methods)]


def _check_answers(
    out: bytes, decided: Decided
) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    responses = _client_view(out, [method for method, _, _ in decided])
    assert len(responses) <= len(decided)
    for status, fields, _ in responses:
        assert status in (200, 204, 304, 502)
        assert (b"x-injected", b"1") not in fields
    return responses


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FAITHFUL), min_size=1, max_size=3), METHODS, CUTS)
def test_well_framed_answers_arrive_whole_in_any_reads(
    kinds: list[str], methods: list[bytes], cut: int
) -> None:
    _, decided, out = _run([b"".join(_requests(methods))], _answers(kinds), cut)
    responses = _check_answers(out, decided)
    bodies = [INJECTED] * len(kinds) + [b"ok"] * len(methods)  # then _answers says "ok"
    expected = [
        (200, b"" if m == b"HEAD" else body) for m, body in zip(methods, bodies, strict=False)
    ]
    assert [(status, body) for status, _, body in responses] == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=3), METHODS)
def test_no_answer_content_becomes_a_response_in_a_pipeline(
    kinds: list[str], methods: list[bytes]
) -> None:
    """Pipelined requests, each answer in one read: whatever an upstream sends after the end of
    its response (content on a HEAD, 204 or 304, more than its Content-Length, a second
    response) is never read as the answer to the next request."""
    _, decided, out = _run([b"".join(_requests(methods))], _answers(kinds))
    _check_answers(out, decided)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=3), METHODS, CUTS)
def test_no_answer_content_becomes_a_response_for_a_later_request(
    kinds: list[str], methods: list[bytes], cut: int
) -> None:
    """One request after another (as different users' requests share a pooled connection), the
    answers in any reads: stray bytes reach an idle connection, which is then never reused."""
    _, decided, out = _run(_requests(methods), _answers(kinds), cut)
    _check_answers(out, decided)


# -- and what must pass -------------------------------------------------------------------


@st.composite
def valid_requests(draw: st.DrawFn, index: int) -> tuple[bytes, tuple[str, str, bytes]]:
    """A well-formed request, and what the upstream must see of it."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    target = f"/ok/{index}" + draw(st.sampled_from(["", "?q=1", "?a=%20b&c"]))
    body = draw(st.sampled_from(BODIES)) if method in ("POST", "PUT", "PATCH") else b""
    framing = draw(st.sampled_from(["length", "chunked", "chunked-ext"])) if body else "none"
    fields, content = _framing(framing, body)
    names = draw(st.sampled_from([b"Host", b"host", b"HOST"]))
    extra = draw(
        st.lists(
            st.sampled_from([b"Accept: */*", b"X-Empty:", b"X-Tab:\tv\t", b"Cookie: a=b"]),
            max_size=3,
        )
    )
    head = [f"{method} {target} HTTP/1.1".encode(), names + b": h", *fields, *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + content, (method, target, body)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(*(valid_requests(i) for i in range(n)))), CUTS)
def test_valid_requests_all_reach_the_upstream_intact(
    requests: tuple[tuple[bytes, tuple[str, str, bytes]], ...], cut: int
) -> None:
    """The other side of strictness: nothing well-formed is refused, whatever the reads, and
    each body arrives exactly as sent, re-framed or not."""
    data = b"".join(raw for raw, _ in requests)
    size = cut or len(data)
    seen, decided, out = _run([data[i : i + size] for i in range(0, len(data), size)])
    assert seen.requests == [expected for _, expected in requests]
    assert [(m, t) for m, t, _ in decided] == [(m, t) for _, (m, t, _) in requests]
    assert out.count(b"HTTP/1.1 200 ") == len(requests)
