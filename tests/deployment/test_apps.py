"""App definitions are validated once, before the store, naming the bad field."""

from __future__ import annotations

import pytest

from lychgate.deployment.apps import AppSpec, build_app
from lychgate.domain import AppPolicy
from lychgate.errors import ClientError


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
    ],
)
def test_bad_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(ClientError) as err:
        build_app(spec(**{field: value}))
    assert err.value.field == field


def test_per_app_limits() -> None:
    app = build_app(spec(connect_timeout=1.5, read_timeout=300, max_body_bytes=0))
    assert (app.connect_timeout, app.read_timeout, app.max_body_bytes) == (1.5, 300, 0)
