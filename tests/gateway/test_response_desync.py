"""Response desync: an upstream's content never becomes a response of its own.

However an upstream frames its answers (content on a HEAD, 204 or 304, more than its
Content-Length, two framings, bare LF, obs-fold, a second response), and in whatever reads
they arrive, the client must get one well-formed response per request at most, and never one
that the upstream's content spelled out. Well-framed answers arrive whole.

The engine runs whole against an h11 upstream, without sockets (:mod:`gateway.h11_engine`).
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.h11_engine import READ_SIZES, Answer, Decided, client_view, ok, run_engine

CUTS = st.sampled_from(READ_SIZES)

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


# Well-framed answers, whose content the client must get whole and unchanged.
FAITHFUL = ["length", "chunked", "close", "interim"]
METHODS = st.lists(st.sampled_from([b"GET", b"GET", b"HEAD"]), min_size=1, max_size=3)
CUTS = st.sampled_from([0, 1, 2, 3, 7, 16])


def _requests(methods: list[bytes]) -> list[bytes]:
    return [b"%s /ok/%d HTTP/1.1\r\nHost: h\r\n\r\n" % (m, i) for i, m in enumerate(methods)]


def _check_answers(
    out: bytes, decided: Decided
) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    responses = client_view(out, [method for method, _, _ in decided])
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
    _, decided, out = run_engine([b"".join(_requests(methods))], _answers(kinds), cut)
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
    _, decided, out = run_engine([b"".join(_requests(methods))], _answers(kinds))
    _check_answers(out, decided)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=3), METHODS, CUTS)
def test_no_answer_content_becomes_a_response_for_a_later_request(
    kinds: list[str], methods: list[bytes], cut: int
) -> None:
    """One request after another (as different users' requests share a pooled connection), the
    answers in any reads: stray bytes reach an idle connection, which is then never reused."""
    _, decided, out = run_engine(_requests(methods), _answers(kinds), cut)
    _check_answers(out, decided)


# A whole response, then bytes that start no response, in the same read.
JUNK_AFTER = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok!!", 200, b"ok"),
    "no-content": (b"HTTP/1.1 204 No Content\r\n\r\nhello", 204, b""),
    "not-modified": (
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 5\r\n\r\nhello',
        304,
        b"",
    ),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\x00\xff",
        200,
        b"ok",
    ),
}


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one by one"])
@pytest.mark.parametrize("kind", list(JUNK_AFTER))
def test_a_whole_response_with_junk_after_it_is_delivered(kind: str, pipelined: bool) -> None:
    """nginx's "upstream sent more data than specified": the response goes to its client
    whole, and the connection is never used again (it used to be cut, response and all)."""
    raw, status, body = JUNK_AFTER[kind]
    answers = [raw]

    def answer(request: h11.Request) -> tuple[bytes, bool]:
        return (answers.pop(0), False) if answers else ok(request)

    requests = _requests([b"GET", b"GET"])
    seen, decided, out = run_engine([b"".join(requests)] if pipelined else requests, answer)
    responses = client_view(out, [method for method, _, _ in decided])
    assert [(s, b) for s, _, b in responses] == [(status, body), (200, b"ok")]
    assert len(seen.requests) == 2
    assert seen.connections == 2  # the first one was not reused


def test_a_head_answered_with_more_than_its_length_is_delivered() -> None:
    def answer(request: h11.Request) -> tuple[bytes, bool]:
        if request.method == b"HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, world", False
        return ok(request)

    seen, decided, out = run_engine(_requests([b"HEAD", b"GET"]), answer)
    responses = client_view(out, [method for method, _, _ in decided])
    assert [(s, b) for s, _, b in responses] == [(200, b""), (200, b"ok")]
    assert seen.connections == 2
