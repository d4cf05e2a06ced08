"""Cookie parsing never raises, and the gateway's cookies never reach an app."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lychgate.errors import UsageError
from lychgate.gateway.cookies import (
    app_cookie_name,
    clear_app_cookie,
    cookie_values,
    is_lychgate_cookie,
    parse_cookies,
    set_app_cookie,
    strip_lychgate_cookies,
)


def test_parses_pairs_across_headers() -> None:
    headers = ["a=1; b = 2 ;c=", "__Host-lychgate=tok.en.sig;d=x=y", "nameless"]
    assert parse_cookies(headers) == [
        ("a", "1"),
        ("b", "2"),
        ("c", ""),
        ("__Host-lychgate", "tok.en.sig"),
        ("d", "x=y"),
        ("", "nameless"),
    ]


@pytest.mark.parametrize(
    ("garbage", "pairs", "stripped"),
    [
        ("", [], None),
        (";;;", [], None),
        ("=", [], "="),  # nothing to parse; kept byte for byte, it is no cookie of ours
        ("==;=", [("", "=")], "==; ="),
        ("\x00\x01", [("", "\x00\x01")], "\x00\x01"),
        (";a", [("", "a")], "a"),
        ('"q"=1', [('"q"', "1")], '"q"=1'),
        ("é=ü", [("é", "ü")], "é=ü"),
        # garbage around our own name: only a "lychgate=" pair is ours (and stripped)
        ("lychgate", [("", "lychgate")], "lychgate"),  # a nameless value
        ("=lychgate=x", [("", "lychgate=x")], "=lychgate=x"),  # a nameless value
        ("lychgate=", [("lychgate", "")], None),
        (" lychgate = x ;;", [("lychgate", "x")], None),
    ],
)
def test_garbage_parses_to_odd_pairs_that_match_nothing(
    garbage: str, pairs: list[tuple[str, str]], stripped: str | None
) -> None:
    assert parse_cookies([garbage]) == pairs
    assert strip_lychgate_cookies([garbage]) == stripped
    assert cookie_values([garbage], "__Host-lychgate") == []


@given(st.lists(st.text(max_size=40), max_size=3))
def test_parse_never_raises(headers: list[str]) -> None:
    for name, value in parse_cookies(headers):
        assert ";" not in name
        assert ";" not in value


def test_values_keep_duplicates_and_exact_names() -> None:
    headers = ["__Host-lychgate=a; lychgate=b; __host-lychgate=c", "__Host-lychgate=d"]
    assert cookie_values(headers, "__Host-lychgate") == ["a", "d"]
    assert cookie_values(headers, "lychgate") == ["b"]


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("__Host-lychgate", True),
        ("lychgate", True),
        ("LychGate", True),
        ("__HOST-lychgate", True),
        ("__Secure-lychgate", True),
        ("lychgate_session", True),
        (" lychgate-login ", True),
        ("session", False),
        ("my-lychgate", False),
        ("__Host-other", False),
        # Found by fuzzing: spellings an app's parser reads as ours, though ours does not
        # trim them (llhttp passes bytes 0x80-0xFF, read here as latin-1).
        ("\xa0lychgate", True),  # NBSP: Django's and Starlette's str.strip() drop it
        ("\x85lychgate", True),  # NEL, likewise
        ("lychgate\u3000", True),
        ("%6Cychgate", True),  # PHP decodes cookie names
        ("__Host-%6cychgate", True),
        ("%20lychgate", True),
        ("\xfflychgate", False),  # no parser reads that as ours
        ("lych%67ate_x", True),
        ("%zzlychgate", False),
    ],
)
def test_namespace(name: str, ours: bool) -> None:
    assert is_lychgate_cookie(name) is ours


def test_strip_keeps_other_cookies_byte_for_byte() -> None:
    headers = ['theme=dark; __Host-lychgate=tok; lychgate_session=s; csrf="a b"', "x=1;lychgate=t"]
    assert strip_lychgate_cookies(headers) == 'theme=dark; csrf="a b"; x=1'


def test_strip_drops_our_cookie_spelled_with_a_leading_nbsp() -> None:
    # The fuzzer's case: admitted on the first value, the second reached the app, whose
    # parser (Starlette's, as Django's) read it as "lychgate".
    cookie = "lychgate=TOKEN; \xa0lychgate=TOKEN; theme=dark"
    assert strip_lychgate_cookies([cookie]) == "theme=dark"


def test_strip_drops_the_header_when_nothing_is_left() -> None:
    assert strip_lychgate_cookies(["__Host-lychgate=a; lychgate=b"]) is None
    assert strip_lychgate_cookies([""]) is None


def test_names() -> None:
    assert app_cookie_name(True) == "__Host-lychgate"
    assert app_cookie_name(False) == "lychgate"


def test_secure_set_cookie() -> None:
    value = set_app_cookie("aaa.bbb.ccc", secure=True, max_age=3600)
    assert value == (
        "__Host-lychgate=aaa.bbb.ccc; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
    )
    assert "Domain" not in value


def test_plain_http_set_cookie() -> None:
    value = set_app_cookie("aaa.bbb.ccc", secure=False, max_age=10)
    assert value == "lychgate=aaa.bbb.ccc; Path=/; Max-Age=10; HttpOnly; SameSite=Lax"


def test_negative_max_age_is_clamped() -> None:
    assert "Max-Age=0;" in set_app_cookie("t", secure=True, max_age=-5)


@pytest.mark.parametrize("bad", ["", "a;b", "a b", 'a"b', "a,b", "a\\b", "é"])
def test_refuses_values_that_are_not_cookie_octets(bad: str) -> None:
    with pytest.raises(UsageError):
        set_app_cookie(bad, secure=True, max_age=1)


@pytest.mark.parametrize("secure", [True, False])
def test_clearing_cookie(secure: bool) -> None:
    value = clear_app_cookie(secure=secure)
    assert value.startswith(f"{app_cookie_name(secure)}=; Path=/; Max-Age=0")
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in value
    assert ("Secure" in value) is secure
