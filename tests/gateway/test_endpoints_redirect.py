"""The redirect-target validator (SECURITY.md item 1), shared by the callback and authz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lychgate.gateway.admit_redirect import origin_of, safe_redirect

SERVED = frozenset(
    {"https://auth.example.com", "https://wiki.example.com", "http://localhost:8080"}
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/wiki/Page?x=1&y=2", "/wiki/Page?x=1&y=2"),
        ("/a/../b", "/b"),
        ("/%2e%2e/x", "/x"),
        ("/a//b", "/a//b"),  # kept, as nginx and Traefik keep it
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # encoded slashes stay a path
        ("/%252F%252Fevil.example", "/%252F%252Fevil.example"),  # double encoding stays inert
        ("/?next=https://evil.example", "/?next=https://evil.example"),
        ("/@evil.example", "/@evil.example"),  # "@" in a path: a path on our host, not a host
    ],
)
def test_same_origin_paths_pass_normalized(value: str, expected: str) -> None:
    assert safe_redirect(value) == expected
    assert safe_redirect(value, origins=SERVED) == expected


@pytest.mark.parametrize(
    "value",
    [
        # other hosts, scheme-relative and backslash tricks
        "https://evil.example",
        "https://evil.example/",
        "//evil.example",
        "//evil.example/path",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\\/evil.example",
        # tabs and newlines, raw or encoded (browsers drop raw ones: "/\t/x" is "//x")
        "/\t/evil.example",
        "/%09/evil.example",
        "/\n/evil.example",
        "/%0a/evil.example",
        "/\r\nLocation: https://evil.example",
        "/%0d%0aSet-Cookie:x=1",
        " /path",
        "/path ",
        # scheme confusion
        "https:evil.example",
        "https:/evil.example",
        "http:\\\\evil.example",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "jAvAsCrIpT:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "DATA:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "mailto:a@example.com",
        "evil.example",
        "evil.example/path",
        # user@host tricks
        "https://wiki.example.com@evil.example",
        "https://wiki.example.com:443@evil.example/",
        "https://user:pw@wiki.example.com/",
        "https://evil.example#@wiki.example.com",
        "https://evil.example\\@wiki.example.com",
        # look-alikes and suffix tricks
        "https://wiki.example.com.evil.example/",
        "https://evilwiki.example.com/",
        "https://wik\u0456.example.com/",  # Cyrillic i
        "https://\uff57\uff49\uff4b\uff49.example.com/",  # full-width
        "https://xn--wik-ved.example.com/",
        # downgrades and ports
        "http://wiki.example.com/",
        "https://wiki.example.com:8443/",
        "https://wiki.example.com:444/",
        "https://localhost:8080/",
        "http://localhost/",
        # percent-encoded hosts
        "https://%77iki.example.com/",
        "https://wiki%2eexample.com/",
        # escapes under /.lychgate (the gateway's path rule, step 7 of paths.py)
        "/.lychgate%2F..%2Fx",
        "/.lychgate/internal%2Ffeed",
        # fragments, nulls, oversize
        "/path#frag",
        "/%00",
        "/a\x00",
        "",
        "/" + "a" * 3000,
    ],
)
def test_tricks_are_refused(value: str) -> None:
    assert safe_redirect(value, origins=SERVED) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://wiki.example.com", "https://wiki.example.com/"),
        ("https://wiki.example.com/", "https://wiki.example.com/"),
        ("HTTPS://WIKI.Example.COM/Page?x", "https://wiki.example.com/Page?x"),
        ("https://wiki.example.com:443/a/../b", "https://wiki.example.com/b"),
        ("https://wiki.example.com?x=1", "https://wiki.example.com/?x=1"),
        ("http://localhost:8080/x", "http://localhost:8080/x"),
        # a trailing dot names the same host: parsed, it *is* a served origin
        ("https://wiki.example.com.", "https://wiki.example.com/"),
        ("https://WIKI.example.com.:443/x", "https://wiki.example.com/x"),
    ],
)
def test_served_origins_pass_after_parsing(value: str, expected: str) -> None:
    assert safe_redirect(value, origins=SERVED) == expected


def test_absolute_urls_need_explicit_origins() -> None:
    assert safe_redirect("https://wiki.example.com/") is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Wiki.Example.com", "https://wiki.example.com"),
        ("https://wiki.example.com:443", "https://wiki.example.com"),
        ("http://wiki.example.com:80", "http://wiki.example.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("https://wiki.example.com/", None),
        ("https://a@wiki.example.com", None),
        ("ftp://wiki.example.com", None),
        ("https://", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


@given(st.text(max_size=80))
def test_whatever_passes_is_ours(value: str) -> None:
    result = safe_redirect(value, origins=SERVED)
    if result is None:
        return
    if result.startswith("/"):
        assert not result.startswith("//")
    else:
        assert any(result.startswith(origin + "/") for origin in SERVED)
    assert result.isascii()
    assert result.isprintable()
    assert " " not in result
    assert "\\" not in result
    assert safe_redirect(result, origins=SERVED) == result
