"""App definitions are validated once, before the store, naming the bad field."""

from __future__ import annotations

import pytest

from fixtures.store import T0
from lychgate.deployment.apps import AppSpec, add_app, build_app, update_app
from lychgate.domain import AppPolicy
from lychgate.errors import ClientError
from lychgate.store import Store


def spec(**kw: object) -> AppSpec:
    base: dict[str, object] = {"slug": "wiki", "name": "Wiki", "upstream": "http://127.0.0.1:3000"}
    base.update(kw)
    return AppSpec(**base)  # type: ignore[arg-type]


def test_a_good_app() -> None:
    app = build_app(spec(host="Wiki.Example.COM.", policy="admins", websockets=True))
    assert app.slug == "wiki"
    assert app.host == "wiki.example.com"
    assert app.policy is AppPolicy.ADMINS
    assert app.websockets
    assert app.id.startswith("app_")


@pytest.mark.parametrize(
    "upstream",
    ["http://127.0.0.1:3000", "https://internal.example:8443/base", "unix:/run/app.sock"],
)
def test_upstream_forms(upstream: str) -> None:
    assert build_app(spec(upstream=upstream)).upstream == upstream


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", "Wiki"),
        ("slug", "-wiki"),
        ("slug", "wiki_2"),
        ("slug", ""),
        ("slug", "a" * 41),
        ("slug", "admin"),
        ("name", ""),
        ("name", "bad\nname"),
        ("upstream", "ftp://x"),
        ("upstream", "http://user:pw@x"),
        ("upstream", "http://x:99999"),
        ("upstream", "http://x/?q=1"),
        ("upstream", "unix:relative.sock"),
        ("upstream", "unix:/a/../b.sock"),
        ("upstream", "127.0.0.1:3000"),
        ("host", "localhost"),
        ("host", "app.example.com:8443"),
        ("host", "bad_host.example.com"),
        ("host", "*.example.com"),
        ("policy", "everyone"),
        ("connect_timeout", 0),
        ("read_timeout", 7200),
        ("max_body_bytes", -1),
        ("max_header_bytes", 1023),
        ("max_header_bytes", 1024 * 1024 + 1),
        ("max_header_bytes", 0),
        ("max_headers", 7),
        ("max_headers", 1001),
        ("max_headers", -1),
        ("idle_timeout", 0),
        ("idle_timeout", -0.5),
        ("idle_timeout", float("inf")),
        ("idle_timeout", float("nan")),
    ],
)
def test_bad_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(ClientError) as err:
        build_app(spec(**{field: value}))
    assert err.value.field == field


def test_per_app_limits() -> None:
    app = build_app(spec(connect_timeout=1.5, read_timeout=300, max_body_bytes=0))
    assert (app.connect_timeout, app.read_timeout, app.max_body_bytes) == (1.5, 300, 0)


def test_per_app_request_limits_at_their_bounds() -> None:
    low = build_app(spec(max_header_bytes=1024, max_headers=8, idle_timeout=0.001))
    assert (low.max_header_bytes, low.max_headers, low.idle_timeout) == (1024, 8, 0.001)
    high = build_app(spec(max_header_bytes=1024 * 1024, max_headers=1000, idle_timeout=86400.0))
    assert (high.max_header_bytes, high.max_headers, high.idle_timeout) == (1048576, 1000, 86400)


def test_request_limits_default_to_the_listeners() -> None:
    app = build_app(spec())
    assert (app.max_header_bytes, app.max_headers, app.idle_timeout) == (None, None, None)


def test_bound_errors_say_the_range() -> None:
    with pytest.raises(ClientError) as err:
        build_app(spec(max_headers=1001))
    assert (err.value.field, err.value.message) == ("max_headers", "must be between 8 and 1000")


async def test_update_keeps_request_limits_not_given_and_checks_the_ones_given(
    store: Store,
) -> None:
    await add_app(store, spec(max_header_bytes=8192, read_timeout=9), T0)
    updated = await update_app(store, "wiki", {"max_headers": 50, "idle_timeout": 2.5}, T0)
    stored = await store.apps.get(updated.id)
    assert stored == updated
    assert (stored.max_header_bytes, stored.max_headers, stored.idle_timeout) == (8192, 50, 2.5)
    assert stored.read_timeout == 9
    with pytest.raises(ClientError) as err:
        await update_app(store, "wiki", {"max_header_bytes": 512}, T0)
    assert err.value.field == "max_header_bytes"
    assert await store.apps.get(updated.id) == stored
