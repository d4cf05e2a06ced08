"""Headers sent upstream (SECURITY.md item 3): client identity never gets through."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from lychgate.config.settings import IpNetwork
from lychgate.errors import ClientError
from lychgate.gateway.forwarded_fields import canonical_name
from lychgate.gateway.forwarding import Identity, forward_headers, identity_headers
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.snapshot import UserProfile
from lychgate.gateway.trusted_proxies import is_trusted
from lychgate.gateway.types import Headers, RequestHead
from lychgate.ids import AppSlug, SessionId, UserId

HOST = RequestHost("wiki.example.com")
PROXY = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def head(*headers: tuple[str, str], client_ip: str = "203.0.113.9") -> RequestHead:
    return RequestHead(
        method="GET",
        target="/",
        path="/",
        query="",
        headers=(("host", "WIKI.example.com."), *headers),
        http_version="1.1",
        client_ip=client_ip,
        scheme="https",
    )


def fwd(
    request: RequestHead,
    *,
    trusted_proxies: tuple[IpNetwork, ...] = (),
    strip_cookies: bool = True,
    identity: Headers = (),
) -> Headers:
    return forward_headers(
        request,
        HOST,
        trusted_proxies=trusted_proxies,
        strip_cookies=strip_cookies,
        identity=identity,
    )


def names(headers: Headers) -> list[str]:
    return [name for name, _ in headers]


def values(headers: Headers, name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name]


SPOOFED = [
    ("x-lychgate-user", "admin"),
    ("X-Lychgate-Email", "admin@example.com"),
    ("x-lychgate-assertion", "forged.jws.token"),
    ("x_lychgate_user", "admin"),
    ("X_LYCHGATE_ADMIN", "true"),
    ("x-lychgate_user", "admin"),
    ("remote-user", "admin"),
    ("Remote_User", "admin"),
    ("x-remote-user", "admin"),
    ("x-forwarded-for", "127.0.0.1"),
    ("x_forwarded_for", "127.0.0.1"),
    ("X-Forwarded-Host", "evil.example"),
    ("x-forwarded-proto", "http"),
    ("x-forwarded-prefix", "/admin"),
    ("forwarded", "for=127.0.0.1;host=evil.example"),
    ("x-real-ip", "127.0.0.1"),
    ("true-client-ip", "127.0.0.1"),
    ("Client-IP", "127.0.0.1"),
    ("x-cluster-client-ip", "127.0.0.1"),
    ("CF-Connecting-IP", "127.0.0.1"),
    ("fastly-client-ip", "127.0.0.1"),
    ("X-Scheme", "https"),
    ("front-end-https", "on"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-auth-request-user", "admin"),
    # Other auth proxies' identity headers, which an app moved from behind one may believe.
    ("X-Forwarded-User", "admin"),
    ("x-forwarded-email", "root@example.com"),
    ("X-Forwarded-Groups", "admins"),
    ("x-forwarded-preferred-username", "admin"),
    ("x-forwarded-access-token", "forged"),
    ("X-Forwarded", "for=127.0.0.1"),
    ("Remote-Groups", "admins"),
    ("remote-email", "root@example.com"),
    ("Remote-Name", "Admin"),
    ("X-WEBAUTH-USER", "admin"),
    ("x-authentik-username", "admin"),
    ("X-Pomerium-Jwt-Assertion", "forged"),
    ("Cf-Access-Authenticated-User-Email", "root@example.com"),
    ("x-goog-authenticated-user-email", "accounts.google.com:root@example.com"),
    ("x-amzn-oidc-identity", "admin"),
]


def test_untrusted_client_headers_are_stripped_and_replaced() -> None:
    out = fwd(head(*SPOOFED, ("accept", "text/html")))
    assert out == (
        ("host", "wiki.example.com"),
        ("accept", "text/html"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "wiki.example.com"),
    )


def test_other_headers_keep_order_and_duplicates() -> None:
    out = fwd(
        head(("accept", "a"), ("x-custom", "1"), ("authorization", "Bearer app"), ("x-custom", "2"))
    )
    assert names(out)[:5] == ["host", "accept", "x-custom", "authorization", "x-custom"]
    assert values(out, "x-custom") == ["1", "2"]
    assert values(out, "authorization") == ["Bearer app"]


def test_the_routed_host_replaces_the_client_spelling() -> None:
    out = fwd(head())
    assert values(out, "host") == ["wiki.example.com"]


@pytest.mark.parametrize(
    ("cookies", "expected"),
    [
        (["a=1; __Host-lychgate=tok; b=2"], ["a=1; b=2"]),
        (["__Host-lychgate=tok", "lychgate_session=s; c=3"], ["c=3"]),
        (["__Host-lychgate=tok; lychgate=x"], []),
        (["__host-LYCHGATE=tossed; theme=dark"], ["theme=dark"]),
    ],
)
def test_gateway_cookies_never_reach_the_app(cookies: list[str], expected: list[str]) -> None:
    out = fwd(head(*(("cookie", c) for c in cookies)))
    assert values(out, "cookie") == expected


def test_authz_gets_its_cookies() -> None:
    out = fwd(head(("cookie", "lychgate_session=s; a=1")), strip_cookies=False)
    assert values(out, "cookie") == ["lychgate_session=s; a=1"]


def test_unconfigured_proxies_are_not_trusted() -> None:
    out = fwd(head(("x-forwarded-for", "1.2.3.4"), client_ip="10.1.2.3"))
    assert values(out, "x-forwarded-for") == ["10.1.2.3"]


def test_trusted_proxy_chain_is_appended() -> None:
    request = head(
        ("x-forwarded-for", "198.51.100.7, 2001:db8::1"),
        ("X-Forwarded-For", "192.0.2.1"),
        ("x-forwarded-proto", "HTTPS"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-prefix", "/app"),
        ("forwarded", 'for=198.51.100.7;proto=https, for="[2001:db8::1]"'),
        client_ip="10.1.2.3",
    )
    out = fwd(request, trusted_proxies=PROXY)
    assert values(out, "x-forwarded-for") == ["198.51.100.7, 2001:db8::1, 192.0.2.1, 10.1.2.3"]
    assert values(out, "x-forwarded-proto") == ["https"]
    assert values(out, "x-forwarded-host") == ["wiki.example.com"]
    assert values(out, "x-forwarded-prefix") == ["/app"]
    assert values(out, "forwarded") == [
        'for=198.51.100.7;proto=https, for="[2001:db8::1]", '
        "for=10.1.2.3;proto=https;host=wiki.example.com"
    ]


def test_identity_headers_are_stripped_from_a_trusted_proxy_too() -> None:
    # A trusted load balancer passes on the client's own fields: X-Forwarded-User is an
    # identity, not a forwarding header, whoever the peer is.
    identities = [pair for pair in SPOOFED if not _forwarding(pair[0])]
    out = fwd(head(*identities, ("accept", "*/*"), client_ip="10.1.2.3"), trusted_proxies=PROXY)
    assert names(out) == [
        "host",
        "accept",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ]


def _forwarding(name: str) -> bool:
    canonical = name.lower().replace("_", "-")
    return canonical == "forwarded" or canonical in {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-prefix",
    }


def test_trusted_ipv6_proxy_is_quoted_in_forwarded() -> None:
    request = head(("forwarded", "for=192.0.2.1"), client_ip="fd00::5")
    out = fwd(request, trusted_proxies=PROXY)
    assert values(out, "forwarded") == [
        'for=192.0.2.1, for="[fd00::5]";proto=https;host=wiki.example.com'
    ]


@pytest.mark.parametrize(
    "bad",
    [
        ("x-forwarded-for", "not-an-ip"),
        ("x-forwarded-for", "1.2.3.4, "),
        ("x-forwarded-for", "1.2.3.4:5678"),
        ("x-forwarded-for", ""),
        ("x-forwarded-proto", "ftp"),
        ("x-forwarded-proto", "http, https"),
        ("forwarded", "for"),
        ("forwarded", "for=1.2.3.4;"),
        ("forwarded", 'for="unterminated'),
        ("forwarded", "for=a b"),
        ("forwarded", "=x"),
        # What a load balancer passes on from its client, checked like X-Forwarded-For:
        ("forwarded", 'for="<img src=x onerror=alert(1)>"'),
        ("forwarded", "for=evil.example"),
        ("forwarded", 'for="[2001:db8::1%eth0]"'),
        ("forwarded", 'for="[not-v6]"'),
        ("forwarded", 'for="1.2.3.4:http"'),
        ("forwarded", "by=203.0.113.300"),
        ("forwarded", "for=1.2.3.4;proto=javascript"),
        ("forwarded", "for=1.2.3.4;FOR=5.6.7.8"),
        ("forwarded", "host=evil.example"),
        ("forwarded", 'host="wiki.example.com:8443"'),
        ("forwarded", 'host="wiki.example.com:80";proto=https'),  # routed on 443
        ("forwarded", 'host="wiki.example.com/x"'),
        ("forwarded", "for=1.2.3.4, host=evil.example"),
    ],
)
def test_unparsable_forwarding_from_a_trusted_proxy_is_an_error(bad: tuple[str, str]) -> None:
    with pytest.raises(ClientError) as err:
        fwd(head(bad, client_ip="10.0.0.1"), trusted_proxies=PROXY)
    assert err.value.status == 400


@pytest.mark.parametrize(
    "element",
    [
        "for=unknown",
        "for=_hidden.node-1;by=_lb",
        'for="_hidden:_port"',
        'for="198.51.100.7:51234"',
        'for="[2001:db8::1]:443"',
        "host=WIKI.example.com.;proto=HTTPS",
        'host="wiki.example.com:443"',
        'host="wiki.example.com:443";proto=https;ext="any \\"quoted\\" text"',
    ],
)
def test_a_trusted_proxys_sound_forwarded_element_is_kept_as_sent(element: str) -> None:
    # RFC 7239 nodes (addresses, "unknown", obfuscated names and ports), and a host= that
    # names the routed host (https://wiki.example.com): the chain an app reads stays whole.
    out = fwd(head(("forwarded", element), client_ip="10.0.0.1"), trusted_proxies=PROXY)
    assert values(out, "forwarded") == [
        f"{element}, for=10.0.0.1;proto=https;host=wiki.example.com"
    ]


def test_a_forwarded_host_is_read_with_its_own_proto() -> None:
    # A load balancer that terminated TLS says so in its element; the hop to the gateway is
    # plain http, with no X-Forwarded-Proto, and the host named (port 443 implied) is routed.
    element = "for=198.51.100.7;proto=https;host=wiki.example.com"
    request = replace(head(("forwarded", element), client_ip="10.0.0.1"), scheme="http")
    out = fwd(request, trusted_proxies=PROXY)
    assert values(out, "forwarded") == [f"{element}, for=10.0.0.1;proto=http;host=wiki.example.com"]


def test_two_proto_headers_from_a_trusted_proxy_are_an_error() -> None:
    request = head(
        ("x-forwarded-proto", "https"), ("x-forwarded-proto", "http"), client_ip="10.0.0.1"
    )
    with pytest.raises(ClientError):
        fwd(request, trusted_proxies=PROXY)


@pytest.mark.parametrize(
    ("ip", "trusted"),
    [("10.9.9.9", True), ("fd00::1", True), ("11.0.0.1", False), ("", False), ("unix", False)],
)
def test_is_trusted(ip: str, trusted: bool) -> None:
    assert is_trusted(ip, PROXY) is trusted
    assert not is_trusted(ip, ())


def identity(email: str | None = "ann@example.com") -> Identity:
    return Identity(
        session_id=SessionId("s1"),
        user_id=UserId("user-1"),
        app=AppSlug("wiki"),
        admin=False,
        profile=UserProfile("Ann", email),
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def test_identity_headers_are_ours_and_appear_once() -> None:
    ours = identity_headers(identity(), "a.b.c")
    out = fwd(head(*SPOOFED), identity=ours)
    assert out[-3:] == (
        ("x-lychgate-user", "user-1"),
        ("x-lychgate-email", "ann@example.com"),
        ("x-lychgate-assertion", "a.b.c"),
    )
    lychgate = [n for n, _ in out if canonical_name(n).startswith("x-lychgate-")]
    assert lychgate == ["x-lychgate-user", "x-lychgate-email", "x-lychgate-assertion"]


@pytest.mark.parametrize("email", [None, "ännchen@example.com", "a@b\r\nx-evil: 1"])
def test_email_header_only_when_plain_ascii(email: str | None) -> None:
    assert names(identity_headers(identity(email), "a.b.c")) == [
        "x-lychgate-user",
        "x-lychgate-assertion",
    ]


def test_canonical_name() -> None:
    assert canonical_name("X_Lychgate_User") == "x-lychgate-user"


def test_trust_is_decided_per_request_not_per_header_name() -> None:
    # Header names are classified once and memoized; whether forwarding headers are kept
    # depends on each request's peer.
    sent = (("x-forwarded-for", "198.51.100.7"), ("x-forwarded-prefix", "/app"))
    for _ in range(2):
        untrusted = fwd(head(*sent, client_ip="203.0.113.9"), trusted_proxies=PROXY)
        assert dict(untrusted)["x-forwarded-for"] == "203.0.113.9"
        assert "x-forwarded-prefix" not in names(untrusted)
        trusted = fwd(head(*sent, client_ip="10.1.2.3"), trusted_proxies=PROXY)
        assert dict(trusted)["x-forwarded-for"] == "198.51.100.7, 10.1.2.3"
        assert ("x-forwarded-prefix", "/app") in trusted


def test_odd_spellings_are_stripped_however_often_they_come() -> None:
    for _ in range(2):
        out = fwd(head(("X_Lychgate_User", "admin"), ("x_forwarded_for", "1.2.3.4")))
        assert "X_Lychgate_User" not in names(out)
        assert "x_forwarded_for" not in names(out)


@pytest.mark.parametrize(
    "listed",
    ["x-forwarded-for", "host", "x-lychgate-user", "x-lychgate-assertion", "x-forwarded-host"],
)
def test_connection_removes_only_what_the_client_sent(listed: str) -> None:
    # RFC 9110 section 7.6.1 lets the client name its own hop-by-hop fields; it must never
    # remove a field the gateway sets (the Traefik CVE-2024-45410 class).
    request = head(
        ("connection", f"keep-alive, {listed}, x-private"),
        ("x-private", "hop"),
        ("accept", "text/html"),
    )
    ours = (("x-lychgate-user", "usr_1"), ("x-lychgate-assertion", "jws"))
    out = fwd(request, identity=ours)
    assert "connection" not in names(out)
    assert "x-private" not in names(out)
    assert dict(out)["accept"] == "text/html"
    assert [v for n, v in out if n == "host"] == ["wiki.example.com"]
    assert [v for n, v in out if n == "x-forwarded-for"] == ["203.0.113.9"]
    assert [v for n, v in out if n == "x-forwarded-host"] == ["wiki.example.com"]
    assert [v for n, v in out if n == "x-lychgate-user"] == ["usr_1"]
    assert [v for n, v in out if n == "x-lychgate-assertion"] == ["jws"]


def test_a_plain_connection_header_is_simply_dropped() -> None:
    out = fwd(head(("connection", "keep-alive"), ("accept", "*/*"), ("upgrade", "websocket")))
    # Upgrade is a fixed hop-by-hop name: the engine drops it, or re-makes it for a tunnel.
    assert names(out) == [
        "host",
        "accept",
        "upgrade",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ]


def test_a_trusted_proxys_connection_header_cannot_hide_its_chain() -> None:
    request = head(
        ("connection", "x-forwarded-for"),
        ("x-forwarded-for", "198.51.100.1"),
        client_ip="10.1.2.3",
    )
    out = fwd(request, trusted_proxies=PROXY)
    # The proxy declared its X-Forwarded-For hop-by-hop: it is dropped, ours still names the peer.
    assert [v for n, v in out if n == "x-forwarded-for"] == ["10.1.2.3"]


@pytest.mark.parametrize("prefix", ["/", "/wiki", "/wiki/", "/a/b-c/d_e~f", "/caf%C3%A9", "/v;1"])
def test_a_trusted_proxys_prefix_may_be_any_plain_absolute_path(prefix: str) -> None:
    out = fwd(head(("x-forwarded-prefix", prefix), client_ip="10.1.2.3"), trusted_proxies=PROXY)
    assert values(out, "x-forwarded-prefix") == [prefix]


def test_a_trusted_proxys_port_and_prefix_are_kept_once_they_parse() -> None:
    request = head(
        ("x-forwarded-port", " 443 "),
        ("x-forwarded-prefix", "/wiki/"),
        ("x-forwarded-server", "edge-1"),
        client_ip="10.1.2.3",
    )
    out = fwd(request, trusted_proxies=PROXY)
    assert values(out, "x-forwarded-port") == [" 443 "]
    assert values(out, "x-forwarded-prefix") == ["/wiki/"]
    assert values(out, "x-forwarded-server") == ["edge-1"]


@pytest.mark.parametrize(
    "fields",
    [
        (("x-forwarded-port", "https"),),
        (("x-forwarded-port", "0"),),
        (("x-forwarded-port", "65536"),),
        (("x-forwarded-port", "443, 80"),),
        (("x-forwarded-port", "+443"),),
        (("x-forwarded-port", "٤٤٣"),),  # Arabic-Indic digits: isdigit() says yes, ASCII no
        (("x-forwarded-port", "443"), ("x_forwarded_port", "443")),
        # A port the client chose, passed on: apps would build links to it (T14).
        (("x-forwarded-port", "1337"),),
        (("x-forwarded-port", "80"),),  # routed on https, port 443
        (("x-forwarded-prefix", "//evil.example"),),
        (("x-forwarded-prefix", "wiki"),),
        (("x-forwarded-prefix", "/a\\b"),),
        (("x-forwarded-prefix", "/a b"),),
        (("x-forwarded-prefix", "/a?b"),),
        (("x-forwarded-prefix", "/a#b"),),
        (("x-forwarded-prefix", "/caf\xe9"),),
        (("x-forwarded-prefix", "/a"), ("x-forwarded-prefix", "/b")),
        # A list whose last item is "//host": Werkzeug's ProxyFix takes the last item.
        (("x-forwarded-prefix", "/a,//evil.example"),),
        (("x-forwarded-prefix", "/,//evil.example"),),
        (("x-forwarded-prefix", '/a"b'),),
        (("x-forwarded-prefix", "/a//b"),),
        (("x-forwarded-prefix", "/%2F%2Fevil.example"),),  # decoded by some: "///evil..."
        (("x-forwarded-prefix", "/a%5Cb"),),
        (("x-forwarded-prefix", "/a%2Cb"),),
        (("x-forwarded-prefix", "/a%00"),),
        (("x-forwarded-prefix", "/a%2"),),
        # An IPv6 zone: ipaddress takes any text after "%", markup and quotes included.
        (("x-forwarded-for", "fe80::1%<img src=x onerror=alert(1)>"),),
        (("x-forwarded-for", "fe80::1%eth0"),),
        (("x-forwarded-server", "caf\xe9"),),
    ],
)
def test_an_unparsable_forwarding_field_from_a_trusted_proxy_is_an_error(
    fields: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(ClientError) as caught:
        fwd(head(*fields, client_ip="10.1.2.3"), trusted_proxies=PROXY)
    assert caught.value.status == 400


def test_the_same_fields_from_anybody_else_are_just_dropped() -> None:
    request = head(("x-forwarded-port", "https"), ("x-forwarded-prefix", "//evil.example"))
    out = fwd(request, trusted_proxies=PROXY)
    assert "x-forwarded-port" not in names(out)
    assert "x-forwarded-prefix" not in names(out)


def test_a_second_connection_header_is_read_too() -> None:
    request = head(
        ("connection", "keep-alive"),
        ("x-private", "hop"),
        ("connection", "x-private"),
        ("accept", "*/*"),
    )
    out = fwd(request)
    assert "x-private" not in names(out)
    assert "connection" not in names(out)
    assert values(out, "accept") == ["*/*"]
