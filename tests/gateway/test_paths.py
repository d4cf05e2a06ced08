"""Request-target normalization (SECURITY.md item 2): normalize once, refuse the tricks."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lychgate.errors import ClientError
from lychgate.gateway.paths import RequestTarget, is_reserved, normalize_path, parse_request_target


@pytest.mark.parametrize(
    ("raw", "path", "query"),
    [
        ("/", "/", None),
        ("/a/b", "/a/b", None),
        ("/a/b/", "/a/b/", None),
        ("/a/b?x=1&y=%2F", "/a/b", "x=1&y=%2F"),
        ("/a?", "/a", ""),
        # dot segments (RFC 3986 section 5.2.4), raw and percent-encoded
        ("/a/../b", "/b", None),
        ("/a/./b", "/a/b", None),
        ("/a/b/..", "/a/", None),
        ("/a/b/.", "/a/b/", None),
        ("/../../etc/passwd", "/etc/passwd", None),
        ("/%2e%2e/%2E%2E/etc", "/etc", None),
        ("/a/.%2e/b", "/b", None),
        ("/a/%2e/b", "/a/b", None),
        # empty segments are kept inside a path (step 4); a leading run is one "/"
        ("//evil.example/x", "/evil.example/x", None),
        ("/a//b///c", "/a//b///c", None),
        ("/a//../b", "/a/b", None),  # RFC 3986 5.2.4: the ".." removes the empty segment
        ("/a/..//b", "/b", None),
        # unreserved escapes are decoded, others upper-cased
        ("/%7euser/%41%62", "/~user/Ab", None),
        ("/a%2fb", "/a%2Fb", None),
        ("/group%2Fproject", "/group%2Fproject", None),
        ("/%e2%82%ac", "/%E2%82%AC", None),
        # printable characters outside pchar are re-spelled
        ("/a|b^c{d}", "/a%7Cb%5Ec%7Bd%7D", None),
        ('/"<>`', "/%22%3C%3E%60", None),
        # case is kept
        ("/Admin/Page", "/Admin/Page", None),
        ("/.LYCHGATE/x", "/.LYCHGATE/x", None),
        # sub-delims and ":" "@" are fine
        ("/a;b=c/@x:y!$&'()*+,", "/a;b=c/@x:y!$&'()*+,", None),
        ("/file.tar.gz/...", "/file.tar.gz/...", None),
        # the reserved prefix spelled with unreserved escapes is the reserved prefix (routing
        # then sees /.lychgate/internal/ and refuses it)
        ("/%2Elychgate/internal/feed", "/.lychgate/internal/feed", None),
        ("/.lychgat%65/internal/feed", "/.lychgate/internal/feed", None),
        ("/%2e%4C%59chgate/%69nternal", "/.LYchgate/internal", None),
        # a "?" ends the path: what follows is query, not route
        ("/.lychgate/healthz?/../internal/feed", "/.lychgate/healthz", "/../internal/feed"),
        ("/x?/.lychgate/internal/feed", "/x", "/.lychgate/internal/feed"),
        ("/.lychgate/login?rd=/a%2Fb%3F%23", "/.lychgate/login", "rd=/a%2Fb%3F%23"),
        # escapes outside /.lychgate are the app's business, even next to the prefix
        ("/.lychgatex%2Fy", "/.lychgatex%2Fy", None),
        ("/a%2F.lychgate/internal%2Ffeed", "/a%2F.lychgate/internal%2Ffeed", None),
        ("/x%3F/.lychgate/internal/feed", "/x%3F/.lychgate/internal/feed", None),
        ("/x/.lychgate%2Finternal", "/x/.lychgate%2Finternal", None),
    ],
)
def test_normalizes(raw: str, path: str, query: str | None) -> None:
    target = parse_request_target(raw)
    assert target == RequestTarget(path, query)
    assert target.origin_form == path + ("" if query is None else "?" + query)


@pytest.mark.parametrize(
    "raw",
    [
        "/%00",
        "/a%00b",
        "/a%0a",
        "/a%0D%0Aset-cookie:x",
        "/a%7f",
        "/a%09b",
        "/a\\b",
        "/%5c..%5cetc",
        "/a%5Cb",
        "/..%2f..%2fetc/passwd",
        "/..%2F",
        "/a%2F..%2Fb",
        "/a/..;/admin",
        "/a/.;x/b",
        "/..%3B/admin",
        "/%2e%2e;/admin",
        "/%c0%ae%c0%ae/etc",
        "/%ff",
        "/%e2%82",
        "/%",
        "/%g0",
        "/%2",
        "/a b",
        "/a\tb",
        "/a\x00",
        "/caf\xe9",
        "/a#frag",
        "/a?b#frag",
        "/a?b c",
        "/a?\x7f",
        "/a?\xe9",
        "*",
        "",
        "a/b",
        "example.com:443",
        "ftp://example.com/",
        "http://user@example.com/",
        "http:///x",
        "javascript:alert(1)",
    ],
)
def test_refuses(raw: str) -> None:
    with pytest.raises(ClientError) as err:
        parse_request_target(raw)
    assert err.value.status == 400
    assert err.value.field == "target"


RESERVED_ESCAPE = "path under /.lychgate holds a percent-escape"


@pytest.mark.parametrize(
    "raw",
    [
        # an encoded "/" that uvicorn would decode into /.lychgate/internal/...
        "/.lychgate/internal%2Ffeed",
        "/.lychgate/internal%2fhandoff",
        "/.lychgate%2Finternal%2Fhandoff",
        "/.LychGate%2fInternal%2fFeed",
        "/%2F.lychgate/internal/feed",
        "/%2f%2F/.lychgate/internal/feed",
        "/%2Elychgate/internal%2Ffeed",
        "/.lychgate%2F",
        # an encoded "?" or "#" next to a reserved segment
        "/.lychgate/internal%3F",
        "/.lychgate/internal%3f/feed",
        "/.lychgate%23/internal/feed",
        "/.lychgate%3F/internal/feed",
        "/.lychgate%3F",
        # anything else still escaped: double encoding, non-ASCII, a space
        "/.lychgate/internal%252Ffeed",
        "/.lychgate/%E2%82%AC",
        "/.lychgate/a%20b",
        "/.lychgate/a|b",  # step 2 spells it %7C
    ],
)
def test_the_reserved_namespace_holds_no_escapes(raw: str) -> None:
    # Step 7: authz decodes paths before routing them; under /.lychgate nothing may be decoded
    # into something else than what the gateway routed. Refused however it is spelled.
    for _ in range(2):  # and every time (refusals are not memoized)
        with pytest.raises(ClientError) as err:
            parse_request_target(raw)
        assert (err.value.status, err.value.field) == (400, "target")
        assert str(err.value) == f"target: {RESERVED_ESCAPE}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("/.lychgate/internal%5Cfeed", "path holds an escaped backslash"),
        ("/.lychgate/internal%5cfeed", "path holds an escaped backslash"),
        ("/.lychgate\\internal\\feed", "path holds a backslash"),
        ("/.lychgate/internal#/feed", "path holds a character that is not allowed"),
        ("/.lychgate/x/..%2Finternal/feed", "path holds a disguised dot-segment"),
    ],
)
def test_earlier_steps_refuse_these_first(raw: str, message: str) -> None:
    # Refused anywhere, not only under /.lychgate (steps 2, 3 and 6).
    with pytest.raises(ClientError) as err:
        parse_request_target(raw)
    assert str(err.value) == f"target: {message}"


@pytest.mark.parametrize(
    ("raw", "authority", "origin_form"),
    [
        ("http://gate.example/a/../b?x", "gate.example", "/b?x"),
        ("HTTPS://Gate.Example:8443", "Gate.Example:8443", "/"),
        ("http://gate.example?x=1", "gate.example", "/?x=1"),
    ],
)
def test_absolute_form_keeps_its_authority_for_routing(
    raw: str, authority: str, origin_form: str
) -> None:
    target = parse_request_target(raw)
    assert target.authority == authority
    assert target.origin_form == origin_form


# -- properties ---------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    ["a", "B", ".", "..", "", "%2e", "%2E%2e", "%2f", "%41", "~", ";", "x;y", "%20", "|", "é", "%"]
)
paths = st.lists(_PIECES, max_size=12).map(lambda parts: "/" + "/".join(parts))


@given(st.one_of(paths, st.text(max_size=40).map(lambda s: "/" + s)))
@example("/..")
@example("/a/../..//../b/.")
@example("/%2e%2e/%2e")
def test_normalization_is_idempotent_and_stays_under_root(raw: str) -> None:
    try:
        once = normalize_path(raw)
    except ClientError:
        return
    assert normalize_path(once) == once
    assert once.startswith("/")
    assert not once.startswith("//")
    assert "//" not in once or not is_reserved(once)
    segments = once.split("/")[1:]
    assert "." not in segments
    assert ".." not in segments
    assert once.isascii()
    assert "\\" not in once


_RESERVED_PIECES = st.sampled_from(
    [
        *(".lychgate", ".LychGate", "%2Elychgate", "internal", "feed", "x", "", "..", "."),
        *("%2F", "%2f", "%3F", "%23", "%25", "%252F", "%5C", ";", "%2E%2E", "%41", "/"),
    ]
)
reserved_ish = st.lists(_RESERVED_PIECES, min_size=1, max_size=8).map(lambda p: "/" + "".join(p))


@given(reserved_ish)
@example("/.lychgate/internal%2Ffeed")
@example("/%2F.lychgate%2finternal")
@example("/.lychgate%23/internal")
def test_what_a_decoding_upstream_reads_under_lychgate_is_what_was_routed(raw: str) -> None:
    # THREAT_MODEL.md T17: uvicorn percent-decodes the path it is sent. If that decoded path is
    # under /.lychgate, the gateway must have routed exactly it: no escape left to decode.
    try:
        path = normalize_path(raw)
    except ClientError:
        return
    decoded = re.sub("/+", "/", unquote(path)).lower()
    if decoded == "/.lychgate" or decoded.startswith("/.lychgate/"):
        assert "%" not in path
        assert is_reserved(path)


@given(st.text(max_size=60))
def test_never_raises_anything_but_a_client_error(raw: str) -> None:
    try:
        target = parse_request_target(raw)
    except ClientError:
        return
    assert target.path.startswith("/")
    assert parse_request_target(target.origin_form).origin_form == target.origin_form


# -- the memo and the query check ---------------------------------------------------------------


@pytest.mark.parametrize("raw", ["/a/..;/b", "/%00", "/a b", "/x?q=#frag"])
def test_a_refused_target_is_refused_every_time(raw: str) -> None:
    # Parsing is memoized; refusals are not, so the second try raises too.
    for _ in range(2):
        with pytest.raises(ClientError):
            parse_request_target(raw)


def test_a_long_target_is_parsed_like_a_short_one() -> None:
    segment = "a" * 600
    raw = f"/{segment}/../{segment}/./x?{'q' * 600}"
    assert parse_request_target(raw) == RequestTarget(f"/{segment}/x", "q" * 600)
    assert parse_request_target(raw) is not parse_request_target(raw)  # not memoized
    assert parse_request_target("/a/../b") is parse_request_target("/a/../b")  # memoized


@pytest.mark.parametrize("code", range(0x100))
def test_query_allows_exactly_visible_ascii_without_hash(code: int) -> None:
    query = f"a={chr(code)}"
    if 0x21 <= code <= 0x7E and chr(code) != "#":
        assert parse_request_target(f"/p?{query}").query == query
    else:
        with pytest.raises(ClientError):
            parse_request_target(f"/p?{query}")
