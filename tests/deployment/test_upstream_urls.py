"""An upstream URL is checked once, as the gateway will read it, and stored normalized.

``app add`` took ``HTTP://...`` as typed, which authz then left out of every snapshot (a login
loop); and it took URLs whose path, port or host the gateway silently read otherwise
(``http://host/sub`` reached the app at ``/x``, not ``/sub/x``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from fixtures.store import T0
from lychgate.deployment.apps import AppSpec, add_app, build_app, update_app
from lychgate.deployment.upstream_urls import check_upstream
from lychgate.errors import ClientError, ConfigError
from lychgate.gateway.http.pool import Endpoint, parse_upstream_url
from lychgate.gateway.snapshot import wire_problem
from lychgate.ids import AppSlug
from lychgate.store import Store


def refusal(url: str) -> str:
    with pytest.raises(ClientError) as err:
        check_upstream(url)
    assert err.value.field == "upstream"
    return err.value.message


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("HTTP://127.0.0.1:9", "http://127.0.0.1:9"),
        ("Https://app.internal:8443/", "https://app.internal:8443"),
        ("UNIX:/run/app.sock", "unix:/run/app.sock"),
        ("unix:///run/app.sock", "unix:/run/app.sock"),  # Docker's spelling: an empty host
        ("http://[::1]:9001", "http://[::1]:9001"),
        ("http://app_1:80", "http://app_1:80"),
    ],
)
def test_upstreams_are_stored_normalized(given: str, stored: str) -> None:
    assert check_upstream(given) == stored


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:9/sub", "path prefixes are not supported"),
        ("http://127.0.0.1:9/sub/", "Give http://127.0.0.1:9 and serve the app at /"),
        ("http://exa mple.com", "has a space or a control character in it"),
        ("http://127.0.0.1:9001 ", "has a space or a control character at its end"),
        (" http://127.0.0.1:9001", "at its start"),
        ("http://127.0.0.1:0", "has the port '0': give the app's port, from 1 to 65535"),
        ("http://127.0.0.1:", "has the port ''"),
        ("http://127.0.0.1:99999", "has the port '99999'"),
        ("http://127.0.0.1:9#", "must not hold a query or a fragment"),
        ("http://127.0.0.1:9?", "must not hold a query or a fragment"),
        ("unix://tmp/x.sock", "no host part ('tmp' here): write one slash, unix:/tmp/x.sock"),
        ("http://[::1", "is not a URL"),
        ("http://[1.2.3.4]:80", "is not a URL"),
        ("http://[v1.x]:80", "is not an IPv6 address"),
        ("http://%41pp:80", "is not a host name or an IP address"),
    ],
)
def test_upstreams_the_gateway_would_misread_are_refused_saying_why(url: str, words: str) -> None:
    assert words in refusal(url)


def test_a_trailing_space_is_not_called_a_bad_port() -> None:
    assert "port" not in refusal("http://127.0.0.1:9001 ")


async def test_update_checks_the_upstream_as_add_does(store: Store) -> None:
    await add_app(store, AppSpec(slug="up", name="U", upstream="HTTP://127.0.0.1:9"), T0)
    app = await store.apps.get_by_slug(AppSlug("up"))
    assert app is not None
    assert app.upstream == "http://127.0.0.1:9"
    with pytest.raises(ClientError, match="path prefixes are not supported"):
        await update_app(store, "up", {"upstream": "http://127.0.0.1:9/sub"}, T0)
    updated = await update_app(store, "up", {"upstream": "HTTPS://127.0.0.1:9443"}, T0)
    assert updated.upstream == "https://127.0.0.1:9443"


@pytest.mark.parametrize("stored", ["HTTP://127.0.0.1:9", "Https://app:8443", "UNIX:/run/a.sock"])
def test_a_stored_upper_case_scheme_stays_in_the_snapshot(stored: str) -> None:
    # Rows written before the check normalized them: authz left the app out of every snapshot.
    app = replace(build_app(AppSpec(slug="up", name="U", upstream="http://x")), upstream=stored)
    assert wire_problem(app) is None


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("HTTP://app:9", Endpoint("app", 9, None, False)),
        ("HTTPS://app", Endpoint("app", 443, None, True)),
        ("Unix:/run/a.sock", Endpoint("", 0, "/run/a.sock", False)),
    ],
)
def test_the_pool_reads_a_scheme_in_any_case(url: str, endpoint: Endpoint) -> None:
    assert parse_upstream_url(url) == endpoint


@pytest.mark.parametrize("url", ["http://app:0", "http://[::1"])
def test_the_pool_refuses_port_0_and_a_broken_host_in_one_line(url: str) -> None:
    # Port 0 was read as the scheme's default (80); "[::1" raised a bare ValueError.
    with pytest.raises(ConfigError):
        parse_upstream_url(url)
