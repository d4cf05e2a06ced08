"""Request smuggling, as a property of the whole engine (SECURITY.md section 8).

Whatever framing a client tries (Content-Length beside Transfer-Encoding, duplicate or signed
lengths, odd codings, obs-fold, bare LF, bodies that hold a whole request, any split into
reads), the upstream must see exactly the requests that the handler decided to forward, in
order, and nothing else. The handler refuses every target under ``/deny``, and the bodies carry
requests for ``/deny``: if the engine's framing upstream ever differed from what llhttp parsed
on the client side, the upstream would read one of them as a request of its own. Upgrade
requests are mixed in, to an app that allows them (``/ws``) and to one that does not: the bytes
after an Upgrade head belong to the tunnel, and must never be parsed as requests either. The
other side of strictness is checked too: every well-formed request reaches the upstream with
its body intact.

The engine runs whole against an h11 upstream, without sockets (:mod:`gateway.h11_engine`), so
hundreds of examples run in a few seconds.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.h11_engine import READ_SIZES, client_view, run_engine

SMUGGLED = b"GET /deny/smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
CUTS = st.sampled_from(READ_SIZES)


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
    seen, decided, out = run_engine(chunks)
    forwarded = [(method, target) for method, target, forward in decided if forward]
    assert seen.errors == [], f"the upstream could not parse what we sent: {seen.errors}"
    got = [(method, target) for method, target, _ in seen.requests]
    # Exactly what was decided on reached the upstream, in order: a forwarded request may still
    # be on its way when the client's connection ends, never one that was not forwarded.
    assert got == forwarded[: len(got)]
    assert len(forwarded) - len(got) <= 1
    assert not any(target.startswith("/deny") for _, target in got)
    # What the client reads is whole responses, one per request at most (and an error page).
    responses = client_view(out, [method for method, _, _ in decided])
    assert len(responses) <= len(decided) + 1


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_the_upstream_sees_only_what_was_forwarded(chunks: list[bytes]) -> None:
    _check(chunks)


def test_a_body_that_holds_a_request_is_only_a_body() -> None:
    request = b"POST /ok/0 HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
    seen, decided, _ = run_engine([request + SMUGGLED])
    assert decided == [("POST", "/ok/0", True)]
    assert seen.requests == [("POST", "/ok/0", SMUGGLED)]


def test_content_length_beside_chunked_is_refused_before_the_upstream() -> None:
    head = b"POST /ok/0 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    seen, decided, out = run_engine([head + b"\r\n" + _chunked(SMUGGLED, ext=False) + SMUGGLED])
    assert decided == []
    assert seen.requests == []
    assert out.startswith(b"HTTP/1.1 400 ")


def test_a_chunked_body_reaches_the_upstream_whole() -> None:
    head = b"POST /ok/0 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    then = b"GET /ok/1 HTTP/1.1\r\nHost: h\r\n\r\n"
    seen, decided, out = run_engine([head + _chunked(SMUGGLED, ext=True), then])
    assert decided == [("POST", "/ok/0", True), ("GET", "/ok/1", True)]
    assert seen.requests == [("POST", "/ok/0", SMUGGLED), ("GET", "/ok/1", b"")]
    assert out.count(b"HTTP/1.1 200 ") == 2


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
    seen, decided, out = run_engine([data[i : i + size] for i in range(0, len(data), size)])
    assert seen.requests == [expected for _, expected in requests]
    assert [(m, t) for m, t, _ in decided] == [(m, t) for _, (m, t, _) in requests]
    assert out.count(b"HTTP/1.1 200 ") == len(requests)
