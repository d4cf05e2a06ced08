"""Host normalization (SECURITY.md item 4) and the two routing modes (DESIGN.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fixtures.keys import ISSUER, make_keyring
from lychgate.domain import App
from lychgate.errors import ClientError
from lychgate.gateway.paths import is_reserved, parse_request_target
from lychgate.gateway.routing import (
    INTERNAL_PREFIX,
    AppRoute,
    AuthzRoute,
    EndpointRoute,
    NoRoute,
    RequestHost,
    is_internal,
    parse_host,
    request_host,
    route,
)
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead
from lychgate.ids import AppId, AppSlug


def make_app(slug: str, host: str | None = None, *, enabled: bool = True) -> App:
    return App(
        id=AppId(f"app_{slug}"),
        slug=AppSlug(slug),
        name=slug,
        upstream="http://127.0.0.1:3000",
        host=host,
        enabled=enabled,
    )


APPS = (
    make_app("wiki"),
    make_app("grafana", "metrics.corp.example"),
    make_app("old", enabled=False),
)


def make_snapshot(routing: str, public_url: str, app_domain: str = "example.com") -> ConfigSnapshot:
    return ConfigSnapshot(
        serial=1,
        issued_at=datetime(2030, 1, 1, tzinfo=UTC),
        issuer=ISSUER,
        routing=routing,  # type: ignore[arg-type]
        public_url=public_url,
        app_domain=app_domain,
        setup_done=True,
        apps=APPS,
        users={},
        revoked_sessions=frozenset(),
        keyring=make_keyring().public,
    )


SINGLE = make_snapshot("single-host", "http://localhost:8080", "localhost")
SUBDOMAINS = make_snapshot("subdomains", "https://auth.example.com")


def head(
    target: str = "/", *hosts: str, scheme: str = "http", sni: str | None = None
) -> RequestHead:
    headers = tuple(("host", h) for h in hosts)
    return RequestHead(
        method="GET",
        target=target,
        path=target,
        query="",
        headers=headers,
        http_version="1.1",
        client_ip="203.0.113.9",
        scheme=scheme,
        sni=sni,
    )


# -- Host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name", "port"),
    [
        ("example.com", "example.com", None),
        ("Example.COM", "example.com", None),
        ("example.com.", "example.com", None),
        ("EXAMPLE.com.:8443", "example.com", 8443),
        ("example.com:", "example.com", None),
        ("localhost:8080", "localhost", 8080),
        ("127.0.0.1:80", "127.0.0.1", 80),
        ("[::1]", "::1", None),
        ("[0:0::1]:8080", "::1", 8080),
        ("[2001:DB8::1]", "2001:db8::1", None),
        ("under_score.internal", "under_score.internal", None),
        # Whitespace around the value is not part of it (RFC 9110 section 5.5).
        ("example.com:8443 ", "example.com", 8443),
        ("example.com\t", "example.com", None),
        (" [::1]:80 ", "::1", 80),
    ],
)
def test_host_is_normalized(value: str, name: str, port: int | None) -> None:
    assert parse_host(value) == RequestHost(name, port)


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "example.com..",
        "a..b",
        ".example.com",
        "user@example.com",
        "user:pw@example.com",
        "exa mple.com",
        "example.com :80",
        "example.com: 80",
        "example.com:0",
        "example.com:65536",
        "example.com:80:80",
        "example.com:8o",
        "example.com:+80",
        "exa%6dple.com",
        "exämple.com",
        "example.com/x",
        "example.com\\x",
        "[::1",
        "[::1]x",
        "[fe80::1%eth0]",
        "[not-ip]",
        "::1",
        "a" * 254,
    ],
)
def test_bad_hosts_are_refused(value: str) -> None:
    for _ in range(2):  # parse_host is memoized, but a refusal is refused every time
        with pytest.raises(ClientError) as err:
            parse_host(value)
        assert err.value.status == 400


def test_a_long_host_is_parsed_like_a_short_one() -> None:
    name = ".".join(["a" * 60] * 4)  # 243 characters: a valid name
    value = f"{name.upper()}.:8443"
    assert len(value) <= 300
    assert parse_host(value) == RequestHost(name, 8443)
    assert parse_host("[::1]:80" + "") == RequestHost("::1", 80)


def test_host_and_authority() -> None:
    assert RequestHost("::1", 8080).authority == "[::1]:8080"
    assert RequestHost("example.com").authority == "example.com"


def _host_of(request: RequestHead) -> RequestHost:
    return request_host(request, parse_request_target(request.target))


def test_exactly_one_host_header() -> None:
    with pytest.raises(ClientError):
        _host_of(head("/"))
    with pytest.raises(ClientError):
        _host_of(head("/", "a.example", "a.example"))
    assert _host_of(head("/", "A.Example.")) == RequestHost("a.example")


@pytest.mark.parametrize(
    ("target", "host", "ok"),
    [
        ("http://gate.example/x", "gate.example", True),
        ("http://GATE.example./x", "gate.example:80", True),
        ("http://gate.example:80/x", "gate.example", True),
        ("http://other.example/x", "gate.example", False),
        ("http://gate.example:8080/x", "gate.example", False),
        ("http://gate.example/x", "gate.example:8080", False),
        ("http://gate.example@other/x", "gate.example", False),
    ],
)
def test_absolute_form_must_agree_with_host(target: str, host: str, ok: bool) -> None:
    request = head(target, host)
    if ok:
        assert _host_of(request).name == "gate.example"
        return
    with pytest.raises(ClientError) as err:
        _host_of(request)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("sni", "host", "status"),
    [
        ("wiki.example.com", "wiki.example.com", None),
        ("WIKI.example.com.", "wiki.example.com:443", None),
        ("wiki.example.com", "grafana.example.com", 421),
        ("example.com", "wiki.example.com", 421),
    ],
)
def test_sni_must_match_host(sni: str, host: str, status: int | None) -> None:
    request = head("/", host, scheme="https", sni=sni)
    if status is None:
        assert _host_of(request).name == "wiki.example.com"
        return
    with pytest.raises(ClientError) as err:
        _host_of(request)
    assert err.value.status == status


# -- routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reserved"),
    [
        ("/.lychgate", True),
        ("/.lychgate/", True),
        ("/.lychgate/login", True),
        ("/.LychGate/login", True),
        ("/.lychgatex", False),
        ("/.lychgate-x/", False),
        ("/x/.lychgate/", False),
        ("/", False),
    ],
)
def test_reserved_prefix(path: str, reserved: bool) -> None:
    assert is_reserved(path) is reserved


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("localhost", "/", AppRoute(None)),
        ("localhost", "/any/path", AppRoute(None)),
        ("localhost", "/.lychgate/callback", EndpointRoute("callback")),
        ("localhost", "/.lychgate/logout", EndpointRoute("logout")),
        ("localhost", "/.lychgate/healthz", EndpointRoute("healthz")),
        ("localhost", "/.lychgate/login", AuthzRoute()),
        ("localhost", "/.LYCHGATE/callback", AuthzRoute()),
        ("localhost", "/.lychgate/callback/x", AuthzRoute()),
        ("localhost", "/.lychgate/internal/feed", NoRoute()),
        ("localhost", "/.LYCHGATE/Internal", NoRoute()),
        # Found by fuzzing: parameters on the segment, which Tomcat strips, hid it.
        ("localhost", "/.lychgate/internal;x/feed", NoRoute()),
        ("localhost", "/.lychgate/INTERNAL;jsessionid=1", NoRoute()),
        ("localhost", "/.lychgate/;x/internal/feed", NoRoute()),  # Tomcat: //internal/feed
        ("localhost", "/.lychgate/;/;y/INTERNAL", NoRoute()),
        ("localhost", "/.lychgate/internals/feed", AuthzRoute()),
        ("localhost", "/.lychgate/x/internal/feed", AuthzRoute()),
        ("other.localhost", "/", NoRoute()),
        ("127.0.0.1", "/", NoRoute()),
        ("127.0.0.1", "/.lychgate/healthz", EndpointRoute("healthz")),
    ],
)
def test_single_host_routes(host: str, path: str, expected: object) -> None:
    assert route(SINGLE, RequestHost(host, 8080), path) == expected


WIKI, GRAFANA = APPS[0], APPS[1]


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("auth.example.com", "/", AuthzRoute()),
        ("auth.example.com", "/.lychgate/login", AuthzRoute()),
        ("auth.example.com", "/.lychgate/callback", AuthzRoute()),
        ("auth.example.com", "/.lychgate/healthz", EndpointRoute("healthz")),
        ("auth.example.com", "/.lychgate/internal/feed", NoRoute()),
        ("wiki.example.com", "/", AppRoute(WIKI)),
        ("wiki.example.com", "/.lychgate/callback", EndpointRoute("callback")),
        ("wiki.example.com", "/.lychgate/logout", EndpointRoute("logout")),
        ("wiki.example.com", "/.lychgate/jwks.json", AuthzRoute()),
        ("wiki.example.com", "/.lychgate/internal/feed", NoRoute()),
        ("auth.example.com", "/.lychgate/internal;x/feed", NoRoute()),
        ("metrics.corp.example", "/d/1", AppRoute(GRAFANA)),
        ("grafana.example.com", "/", NoRoute()),  # its explicit host replaces the slug host
        ("old.example.com", "/", NoRoute()),  # disabled
        ("example.com", "/", NoRoute()),
        ("evil.example", "/", NoRoute()),
        ("wiki.example.com.evil.example", "/", NoRoute()),
    ],
)
def test_subdomain_routes(host: str, path: str, expected: Any) -> None:
    assert route(SUBDOMAINS, RequestHost(host), path) == expected


def test_the_internal_prefix_is_the_reserved_directory_and_its_segment() -> None:
    assert INTERNAL_PREFIX == "/.lychgate/internal"
    assert is_internal(INTERNAL_PREFIX)
    assert is_internal(INTERNAL_PREFIX + "/feed")
    assert not is_internal("/.lychgate/internalx")
