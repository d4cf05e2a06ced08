"""Why the gateway answered as it did: the reason beside each refusal and upstream failure.

The client sees a fixed page (SECURITY.md item 9); the operator sees the reason in the access
log, and upstream failures as a throttled warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct

import pytest

from fixtures.clocks import Ticks
from gateway.client import get
from gateway.conftest import Answers, Connect, Start, forward_to
from gateway.upstreams import Raw, http_upstream, raw_upstream, read_head
from gateway.world import FETCH, NAVIGATE, World, handler_for
from lychgate.gateway.accesslog import LOGGER_NAME as ACCESS_LOGGER
from lychgate.gateway.accesslog import AccessLog
from lychgate.gateway.http import Limits
from lychgate.gateway.http.failures import UpstreamFailures
from lychgate.gateway.metrics import GatewayMetrics
from lychgate.gateway.runner import response_hook
from lychgate.gateway.types import Decision, Forward, RequestHead, Respond
from lychgate.ids import AppSlug

WIKI = AppSlug("wiki")


# -- the throttle, on a fake clock ------------------------------------------------------------


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lychgate.gateway.upstream"]


def test_one_warning_per_upstream_and_reason_per_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Ticks(100.0)
    failures = UpstreamFailures(clock, window=10.0)
    down = "upstream connect failed: Connection refused"
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.upstream"):
        for _ in range(5):
            failures.report("http://10.0.0.5:80", WIKI, "connect", down)
        failures.report(
            "http://10.0.0.5:80", WIKI, "read_timeout", "upstream read timed out"
        )  # another kind
        failures.report("http://10.0.0.6:80", None, "connect", down)  # another upstream
        clock.now += 9.9
        failures.report("http://10.0.0.5:80", WIKI, "connect", down)  # still in the window: counted
        clock.now += 0.1
        failures.report("http://10.0.0.5:80", WIKI, "connect", down)
        clock.now += 60
        failures.report("http://10.0.0.5:80", WIKI, "connect", down)
    assert _messages(caplog) == [
        f"app wiki, upstream http://10.0.0.5:80: {down}",
        "app wiki, upstream http://10.0.0.5:80: upstream read timed out",
        f"app -, upstream http://10.0.0.6:80: {down}",
        f"app wiki, upstream http://10.0.0.5:80: {down} (5 more since the last report)",
        f"app wiki, upstream http://10.0.0.5:80: {down}",
    ]
    # Every one is counted, logged or not, by app and kind (the metric's labels).
    assert failures.counts == {
        (WIKI, "connect"): 8,
        (WIKI, "read_timeout"): 1,
        (None, "connect"): 1,
    }


def test_what_is_remembered_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    failures = UpstreamFailures(Ticks(100.0))
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.upstream"):
        for n in range(3000):  # e.g. an upstream whose error text names a changing port
            failures.report("http://up", None, "connect", f"failure {n}")
        failures.report("http://up", None, "connect", "failure 0")  # forgotten long ago: told again
    assert len(failures._throttle._seen) <= 1024
    assert len(_messages(caplog)) == 3001


# -- the engine: every failure carries its reason to the response hook -----------------------


@pytest.mark.loopback
async def test_upstream_down_is_told_once_and_logged_each_time(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answers = Answers()
    gw = await gateway(forward_to(f"http://127.0.0.1:{port}"), on_response=answers)
    c = await connect(gw.port)
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.upstream"):
        for _ in range(3):
            await c.send(get())
            r = await c.read_response()
            assert (r.status, r.body) == (502, r.page())  # nothing more for clients
    down = "upstream connect failed: Connection refused"
    assert answers.seen == [(502, down)] * 3
    assert gw.upstream_failures == {(None, "connect"): 3}  # for the metric
    assert _messages(caplog) == [f"app -, upstream http://127.0.0.1:{port}: {down}"]


@pytest.mark.loopback
async def test_connect_timeout_reason(gateway: Start, connect: Connect) -> None:
    with socket.socket() as listener:  # never accepts, backlog full: handshakes hang
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        _, filler = await asyncio.open_connection("127.0.0.1", port)
        try:
            answers = Answers()
            handler = forward_to(f"http://127.0.0.1:{port}", connect_timeout=0.2)
            gw = await gateway(handler, on_response=answers)
            c = await connect(gw.port)
            await c.send(get())
            assert (await c.read_response(timeout=2.0)).status == 504
        finally:
            filler.close()
    assert answers.seen == [(504, "upstream connect timed out")]
    assert gw.upstream_failures == {(None, "connect_timeout"): 1}


def _serve_bytes(data: bytes, *, then_sleep: float = 0.0) -> Raw:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(then_sleep)
        writer.close()

    return serve


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("sent", "linger", "status", "reason"),
    [
        (b"", 5.0, 504, "upstream read timed out"),
        # Cut: the head went out, and the record says so, with why.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            0.0,
            None,
            "upstream closed the connection before its response ended",
        ),
        (b"", 0.0, 502, "upstream closed the connection before its response ended"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", 1.0, 502, "upstream sent a malformed response"),
        # Three digits, but no status RFC 9110 gives a meaning (it reached clients as is).
        (b"HTTP/1.1 999 Odd\r\n\r\n", 1.0, 502, "upstream sent a malformed response"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", 1.0, 502, "upstream sent a malformed response"),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
            1.0,
            502,
            "upstream response head too long",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            1.0,
            502,
            "upstream response under a transfer coding other than chunked alone",
        ),
        (
            b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
            1.0,
            502,
            "upstream switched protocols unasked",
        ),
        # Broken within the read that brought its head, so none of it had left: a 502 (the
        # client got a bare reset, and the record claimed a 200).
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            1.0,
            502,
            "upstream sent a malformed response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
            1.0,
            502,
            "upstream sent a malformed response",
        ),
    ],
    ids=[
        "read timeout",
        "cut mid-body",
        "closed",
        "malformed",
        "status 999",
        "status 099",
        "head too long",
        "gzip to close",
        "unasked 101",
        "bad chunk with the head",
        "bare LF chunks with the head",
    ],
)
async def test_upstream_response_failures_say_why(
    gateway: Start,
    connect: Connect,
    sent: bytes,
    linger: float,
    status: int | None,
    reason: str | None,
) -> None:
    async with raw_upstream(_serve_bytes(sent, then_sleep=linger)) as up:
        answers = Answers()
        gw = await gateway(forward_to(up.url, read_timeout=0.3), on_response=answers)
        c = await connect(gw.port)
        await c.send(get())
        if status is None:  # the head went out: the client's connection is cut instead
            assert (await c.read_until_closed(timeout=2.0)).endswith(b"abc")
            assert answers.seen == [(200, reason)]
            return
        r = await c.read_response(timeout=2.0)
        assert r.status == status
    assert answers.seen == [(status, reason)]


@pytest.mark.loopback
async def test_a_local_answer_carries_its_reason(gateway: Start, connect: Connect) -> None:
    def handler(head: RequestHead) -> Decision:
        if head.path == "/why":
            return Respond(403, (), b"no\n", "admins only")
        return Respond(204)

    answers = Answers()
    gw = await gateway(handler, on_response=answers)
    c = await connect(gw.port)
    await c.send(get("/why") + get("/fine"))
    r = await c.read_response()
    assert (r.status, r.body) == (403, b"no\n")  # the reason itself is never sent
    assert (await c.read_response()).status == 204
    assert answers.seen == [(403, "admins only"), (204, "")]


@pytest.mark.loopback
async def test_a_local_answer_for_an_app_is_counted_for_it(
    gateway: Start, connect: Connect
) -> None:
    # A refusal by an app's own rule (admins only, its header limits, its origin rules) was
    # logged and counted with no app, so a per-app dashboard never showed it.
    apps: list[AppSlug | None] = []

    def hook(head: object, app: AppSlug | None, *rest: object) -> None:
        apps.append(app)

    def handler(head: RequestHead) -> Decision:
        return Respond(403, (), b"no\n", "admins only", app=AppSlug("wiki"))

    gw = await gateway(handler, on_response=hook)
    c = await connect(gw.port)
    await c.send(get("/"))
    assert (await c.read_response()).status == 403
    assert apps == ["wiki"]


# -- the handler: admission's reason reaches the Respond ---------------------------------------

SINGLE = World("single-host")


@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        (SINGLE.head("/", headers=NAVIGATE), 302, "login: no_cookie"),
        (SINGLE.head("/", headers=FETCH), 401, "no_cookie"),
        (SINGLE.head("/", cookies=["garbage"], headers=FETCH), 401, "malformed"),
        (SINGLE.head("/", cookies=[SINGLE.token(sid="revoked-sess")]), 401, "revoked"),
        (SINGLE.head("/", cookies=[SINGLE.token(app="admin")], headers=FETCH), 403, "admins only"),
        (
            SINGLE.head("/", host="elsewhere.example"),
            404,
            "no route: unknown host or internal path",
        ),
    ],
    ids=["navigation", "script", "garbage", "revoked", "admins only", "unknown host"],
)
def test_admission_reasons_reach_the_answer(head: RequestHead, status: int, reason: str) -> None:
    handler, _ = handler_for(SINGLE)
    decision = handler(head)
    assert isinstance(decision, Respond)
    assert (decision.status, decision.reason) == (status, reason)
    assert reason.encode() not in decision.body  # for the log only


def test_an_apps_own_refusal_names_the_app() -> None:
    handler, _ = handler_for(SINGLE)
    refused = handler(SINGLE.head("/", cookies=[SINGLE.token(app="admin")], headers=FETCH))
    assert isinstance(refused, Respond)
    assert (refused.status, refused.app) == (403, "admin")
    anonymous = handler(SINGLE.head("/", headers=FETCH))
    assert isinstance(anonymous, Respond)
    assert (anonymous.status, anonymous.app) == (401, None)  # no app's rule: no app known


def test_the_decision_names_who_it_was_made_for() -> None:
    # The access log's user and session: set on a forward and on a policy's refusal of a
    # valid token, never on an answer to an anonymous or refused token.
    handler, _ = handler_for(SINGLE)
    forwarded = handler(SINGLE.head("/", cookies=[SINGLE.token(sid="sess-9")]))
    assert isinstance(forwarded, Forward)
    assert forwarded.who is not None
    assert (forwarded.who.user_id, forwarded.who.session_id) == ("user-1", "sess-9")
    refused = handler(SINGLE.head("/", cookies=[SINGLE.token(app="admin")], headers=FETCH))
    assert isinstance(refused, Respond)
    assert refused.status == 403
    assert refused.who is not None
    assert refused.who.user_id == "user-1"
    for anonymous in (
        SINGLE.head("/", headers=FETCH),
        SINGLE.head("/", cookies=[SINGLE.token(sid="revoked-sess")], headers=FETCH),
    ):
        answer = handler(anonymous)
        assert isinstance(answer, Respond)
        assert answer.who is None


# -- refusals of the request itself: the rule that refused it ---------------------------------

H = "Host: h\r\n"


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400, "no Host field"),
        (f"GET / HTTP/1.1\r\n{H}{H}\r\n".encode(), 400, "several Host fields"),
        (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405, "CONNECT not served"),
        (f"GET /#top HTTP/1.1\r\n{H}\r\n".encode(), 400, "fragment in the request-target"),
        (
            f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n".encode(),
            501,
            "a transfer coding other than one chunked",
        ),
        (
            f"POST / HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n\r\n".encode(),
            400,
            "Transfer-Encoding in HTTP/1.0",
        ),
        (
            f"PUT / HTTP/1.1\r\n{H}Expect: teapot\r\nContent-Length: 1\r\n\r\nx".encode(),
            417,
            "an expectation other than 100-continue",
        ),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 414, "request-target too long"),
        (f"GET / HTTP/1.1\r\n{H}X: {'a' * 20000}\r\n\r\n".encode(), 431, "request head too large"),
        (
            (
                "GET / HTTP/1.1\r\n" + H + "".join(f"X{n}: a\r\n" for n in range(120)) + "\r\n"
            ).encode(),
            431,
            "too many header fields",
        ),
    ],
    ids=[
        "no host",
        "two hosts",
        "connect",
        "fragment",
        "gzip coding",
        "chunked on 1.0",
        "expectation",
        "long url",
        "big head",
        "many fields",
    ],
)
async def test_a_refused_request_says_which_rule(
    gateway: Start, connect: Connect, request_bytes: bytes, status: int, reason: str
) -> None:
    answers = Answers()
    gw = await gateway(lambda head: Respond(204), on_response=answers)
    c = await connect(gw.port)
    await c.send(request_bytes)
    r = await c.read_response()
    assert r.status == status
    assert reason.encode() not in r.body
    assert answers.seen == [(status, reason)]


@pytest.mark.loopback
async def test_a_malformed_request_is_told_in_llhttps_words(
    gateway: Start, connect: Connect
) -> None:
    answers = Answers()
    gw = await gateway(lambda head: Respond(204), on_response=answers)
    c = await connect(gw.port)
    await c.send(
        f"POST / HTTP/1.1\r\n{H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    assert (await c.read_response()).status == 400
    [(status, reason)] = answers.seen
    assert status == 400
    assert reason.startswith("malformed request: ")


@pytest.mark.loopback
async def test_a_refused_head_is_logged_with_its_client(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    hook = response_hook(GatewayMetrics(), AccessLog())
    gw = await gateway(lambda head: Respond(204), on_response=hook)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        c = await connect(gw.port)
        await c.send(b"GET / HTTP/1.1\r\nBad Field: x\r\n\r\n")
        assert (await c.read_response()).status == 400
    [line] = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    record = json.loads(line)
    assert record["client"] == "127.0.0.1"
    assert record["status"] == 400
    assert record["reason"].startswith("malformed request: ")
    assert "method" not in record
    assert "path" not in record


@pytest.mark.loopback
async def test_content_over_the_limit_and_a_slow_head_say_why(
    gateway: Start, connect: Connect
) -> None:
    async with http_upstream() as up:
        answers = Answers()
        limits = Limits(max_body_bytes=1024, header_timeout=0.3)
        gw = await gateway(forward_to(up.url), on_response=answers, limits=limits)
        c = await connect(gw.port)
        await c.send(f"POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n".encode())
        await c.send(b"800\r\n" + b"x" * 2048 + b"\r\n")
        assert (await c.read_response()).status == 413
        declared = await connect(gw.port)
        await declared.send(f"POST / HTTP/1.1\r\n{H}Content-Length: 1025\r\n\r\n".encode())
        assert (await declared.read_response()).status == 413
        slow = await connect(gw.port)
        await slow.send(b"GET / HTTP/1.1\r\n")  # and nothing more
        assert (await slow.read_response(timeout=3.0)).status == 408
    assert answers.seen == [
        (413, "request content over the body size limit"),
        (413, "Content-Length over the body size limit"),
        (408, "request head not received in time"),
    ]


# -- answers that never ended -------------------------------------------------------------------


def _stream_forever(head_first: bool) -> Raw:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        if head_first:  # an event stream: the head, then events for as long as it lasts
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            writer.write(b"Transfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
            await writer.drain()
        await asyncio.sleep(10)

    return serve


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("head_first", "status"), [(True, 200), (False, 499)], ids=["mid-stream", "before its head"]
)
async def test_a_client_that_leaves_is_recorded(
    gateway: Start, connect: Connect, head_first: bool, status: int
) -> None:
    # An event stream ends this way as a rule; it used to leave no record and no count.
    async with raw_upstream(_stream_forever(head_first)) as up:
        answers = Answers()
        gw = await gateway(forward_to(up.url), on_response=answers)
        c = await connect(gw.port)
        await c.send(get())
        if head_first:
            assert (await c.reader.readuntil(b"data:1")).startswith(b"HTTP/1.1 200 OK")
        else:
            await asyncio.sleep(0.2)  # forwarded, and waiting for the upstream
        # Gone for good (a closed tab): a reset. A FIN alone would only half-close, and the
        # gateway would learn of it at its next write.
        sock = c.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.writer.transport.abort()
        for _ in range(100):
            if answers.seen:
                break
            await asyncio.sleep(0.01)
        assert answers.seen == [(status, "client closed the connection")]


@pytest.mark.loopback
async def test_a_response_the_upstream_cuts_counts_as_its_failure(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    sent = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with raw_upstream(_serve_bytes(sent, then_sleep=0.0)) as up:
        url = up.url
        gw = await gateway(forward_to(url), on_response=Answers())
        c = await connect(gw.port)
        with caplog.at_level(logging.WARNING, logger="lychgate.gateway.upstream"):
            await c.send(get())
            await c.read_until_closed(timeout=2.0)
        assert gw.upstream_failures[(None, "closed")] == 1
    assert _messages(caplog) == [
        f"app -, upstream {url}: upstream closed the connection before its response ended"
    ]
