"""Request-target normalization (SECURITY.md item 2): normalize once, refuse the tricks."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lychgate.errors import ClientError
from lychgate.gateway.paths import RequestTarget, normalize_path, parse_request_target


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
        # empty segments collapse; never a leading "//"
        ("//evil.example/x", "/evil.example/x", None),
        ("/a//b///c", "/a/b/c", None),
        ("/a//../b", "/b", None),
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
    assert "//" not in once
    segments = once.split("/")[1:]
    assert "." not in segments
    assert ".." not in segments
    assert once.isascii()
    assert "\\" not in once


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
