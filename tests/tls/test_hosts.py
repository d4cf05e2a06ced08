"""Host normalization, the plain-HTTP rule and the names a deployment's certificate covers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lychgate.errors import ConfigError
from lychgate.tls.hosts import (
    hostnames_for,
    is_loopback_host,
    is_plain_http_allowed,
    normalize_host,
    normalize_san,
    requires_tls,
    url_scheme_and_host,
)

PLAIN_HTTP_ALLOWED = [
    "http://localhost",
    "http://localhost/",
    "http://localhost:8080",
    "http://localhost:8080/portal?x=1#y",
    "http://localhost:/",  # empty port is the default port (WHATWG)
    "HTTP://LOCALHOST/",
    "http://LocalHost.:8080/",  # trailing dot
    "http://app.localhost:8080",
    "http://a.b.localhost",
    "http://app.localhost./",
    "http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34/",  # full-width LOCALHOST
    "http://app\u3002localhost/",  # ideographic full stop is a dot after UTS #46
    "http://127.0.0.1",
    "http://127.0.0.1:8080/",
    "http://127.1.2.3:9000",
    "http://127.255.255.254",
    "http://[::1]",
    "http://[::1]:8080/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://localhost?next=https://evil.example",
]

PLAIN_HTTP_REFUSED = [
    # TLS URLs are not "plain HTTP" at all.
    "https://localhost",
    "https://127.0.0.1",
    # Look-alikes that are ordinary DNS names.
    "http://localhost.evil.com",
    "http://localhost.evil.com./",
    "http://localhost\u3002evil.com/",
    "http://evil.localhost.com",
    "http://xlocalhost",
    "http://localhostx",
    "http://localhost-evil.com",
    "http://evil.com",
    "http://example.com:8080",
    # Userinfo and parser differentials between urllib and WHATWG.
    "http://localhost@evil.com",
    "http://evil.com@localhost",
    "http://user:pw@localhost/",
    "http://evil.com\\@localhost/",
    "http://localhost\\@evil.com/",
    "http://localhost\\.evil.com/",
    "http://%6c%6fcalhost/",
    "http://localhost%2eevil.com/",
    "http://localhost%00.evil.com/",
    # IPv4 in legacy notations a browser would accept: we do not guess.
    "http://127.1",
    "http://0x7f.0.0.1",
    "http://0177.0.0.1",
    "http://2130706433",
    "http://127.000.000.001",
    "http://\uff11\uff12\uff17.1/",  # full-width 127.1
    # Not loopback.
    "http://0.0.0.0",
    "http://128.0.0.1",
    "http://10.0.0.1",
    "http://169.254.0.1",
    "http://[::]",
    "http://[::ffff:127.0.0.1]",
    "http://[::2]",
    "http://[fe80::1%25lo]",
    # Malformed.
    "http://[::1",
    "http://[::1]x/",
    "http://[::1]:x/",
    "http://::1/",
    "http://.localhost",
    "http://..localhost",
    "http://app..localhost",
    "http://localhost..",
    "http://localhost:0",
    "http://localhost:65536",
    "http://localhost:8o",
    "http://localhost:\uff18\uff10/",  # full-width digits in the port
    "http://local host",
    "http://localhost\t/",
    "http://lo\ncalhost",
    "http://localhost /",
    " http://localhost",
    "http://",
    "http:///localhost",
    "http:localhost",
    "http:/localhost",
    "//localhost",
    "localhost:8080",
    "localhost",
    "",
    "ftp://localhost",
    "ws://localhost",
    "javascript:alert(1)//localhost",
]


@pytest.mark.parametrize("url", PLAIN_HTTP_ALLOWED)
def test_plain_http_allowed(url: str) -> None:
    assert is_plain_http_allowed(url)
    assert requires_tls(url) is False


@pytest.mark.parametrize("url", PLAIN_HTTP_REFUSED)
def test_plain_http_refused(url: str) -> None:
    assert not is_plain_http_allowed(url)


@pytest.mark.parametrize(
    "url", ["https://example.com", "https://localhost:8443", "HTTPS://Auth.Example.COM/"]
)
def test_https_requires_tls(url: str) -> None:
    assert requires_tls(url) is True


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://localhost.evil.com", "http://10.0.0.1:8080"]
)
def test_plain_http_elsewhere_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        requires_tls(url, field="gateway.public_url")
    assert info.value.field == "gateway.public_url"
    assert "https://" in info.value.message


@pytest.mark.parametrize("url", ["http://evil.com\\@localhost/", "ftp://x", "localhost"])
def test_unparsable_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        requires_tls(url)
    assert info.value.field == "public_url"


@given(st.text())
def test_plain_http_check_never_raises(url: str) -> None:
    assert is_plain_http_allowed(url) in (True, False)
    assert is_plain_http_allowed("http://" + url) in (True, False)


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(_LABEL, min_size=1, max_size=4), st.sampled_from(["", ".", ":8080", "/x"]))
def test_names_after_localhost_are_never_loopback(labels: list[str], tail: str) -> None:
    suffix = ".".join(labels)
    if labels[-1] == "localhost":
        suffix += ".com"
    assert not is_plain_http_allowed(f"http://localhost.{suffix}{tail}")
    assert not is_plain_http_allowed(f"http://127.0.0.1.{suffix}{tail}")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("fa\u00df.example", "xn--fa-hia.example"),  # IDNA 2008: no transitional ss mapping
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),
        ("192.0.2.1", "192.0.2.1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("localhost", "localhost"),
    ],
)
def test_normalize_host(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "",
        ".",
        "a..b",
        ".example.com",
        "example.com..",
        "-a.example",
        "a-.example",
        "a_b.example",
        "a b.example",
        "a" * 64 + ".example",
        ".".join(["a" * 63] * 4),  # 255 characters
        "xn--zz.example",  # not valid punycode
        "host.123",  # would be read as IPv4
        "host.0x1f",
        "*.example.com",
        "[fe80::1%eth0]",
        "[::1",
        "exa%6dple.com",
        "evil.com/",
    ],
)
def test_normalize_host_refuses(host: str) -> None:
    with pytest.raises(ConfigError):
        normalize_host(host)


def test_normalize_san_wildcards() -> None:
    assert normalize_san("*.Example.COM.") == "*.example.com"
    assert normalize_san("*.b\u00fccher.example") == "*.xn--bcher-kva.example"
    for bad in ["*", "*.com", "*.localhost", "a.*.example.com", "f*.example.com", "*.192.0.2.1"]:
        with pytest.raises(ConfigError):
            normalize_san(bad)


def test_url_scheme_and_host() -> None:
    assert url_scheme_and_host("HTTPS://Auth.Example.com.:8443/x") == ("https", "auth.example.com")
    assert url_scheme_and_host("http://[::1]:80") == ("http", "::1")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("a.localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("localhost.com", False),
        ("notlocalhost", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - a host under test, not a bind address
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


class TestHostnamesFor:
    def test_single_host(self) -> None:
        assert hostnames_for("https://Gate.Example.com:8443/", "single-host") == [
            "gate.example.com"
        ]
        assert hostnames_for("https://[::1]:8443", "single-host") == ["::1"]
        assert hostnames_for("https://192.0.2.10", "single-host") == ["192.0.2.10"]

    def test_subdomains_takes_the_portal_parent(self) -> None:
        names = hostnames_for("https://auth.example.com", "subdomains")
        assert names == ["example.com", "*.example.com"]

    def test_subdomains_with_explicit_domain(self) -> None:
        assert hostnames_for("https://example.com", "subdomains", domain="Example.com.") == [
            "example.com",
            "*.example.com",
        ]
        # The wildcard covers one label only (RFC 6125 §6.4.3), so a deeper portal is added.
        assert hostnames_for(
            "https://login.auth.example.com", "subdomains", domain="example.com"
        ) == [
            "example.com",
            "*.example.com",
            "login.auth.example.com",
        ]
        assert hostnames_for(
            "https://auth.example.com", "subdomains", domain="apps.example.org"
        ) == [
            "apps.example.org",
            "*.apps.example.org",
            "auth.example.com",
        ]

    def test_subdomains_idn_and_localhost(self) -> None:
        assert hostnames_for("https://auth.b\u00fccher.example", "subdomains") == [
            "xn--bcher-kva.example",
            "*.xn--bcher-kva.example",
        ]

    @pytest.mark.parametrize(
        "url", ["https://example.com", "https://com", "https://localhost", "https://a.localhost"]
    )
    def test_subdomains_refuses_a_top_level_parent(self, url: str) -> None:
        with pytest.raises(ConfigError) as info:
            hostnames_for(url, "subdomains")
        assert info.value.field == "domain"
        with pytest.raises(ConfigError):
            hostnames_for("https://auth.example.com", "subdomains", domain="com")

    @pytest.mark.parametrize("url", ["https://192.0.2.10", "https://[::1]"])
    def test_subdomains_refuses_ip_portals(self, url: str) -> None:
        with pytest.raises(ConfigError):
            hostnames_for(url, "subdomains")

    def test_subdomains_refuses_ip_domain(self) -> None:
        with pytest.raises(ConfigError) as info:
            hostnames_for("https://auth.example.com", "subdomains", domain="192.0.2.1")
        assert info.value.field == "domain"
