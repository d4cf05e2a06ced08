"""App definitions are validated once, before the store, naming the bad field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fixtures.store import T0
from lychgate.config import Limits
from lychgate.deployment.apps import AppSpec, add_app, build_app, update_app
from lychgate.domain import AppPolicy
from lychgate.errors import ClientError
from lychgate.store import Store
from lychgate.unix_sockets import MAX_SOCKET_PATH_BYTES


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
    ["http://127.0.0.1:3000", "https://internal.example:8443", "unix:/run/app.sock"],
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
        ("connect_timeout", float("inf")),
        ("read_timeout", 7200),
        ("read_timeout", float("nan")),
        ("max_body_bytes", -1),
        ("max_body_bytes", 2**50 + 1),
        ("max_body_bytes", 2**63),  # SQLite's INTEGER overflowed: a traceback
        ("max_body_bytes", 10**23),
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
        ("idle_timeout", 86400.5),
        # Shown on the portal: a bidi override made "Pay\u202eroll" read "Payllor".
        ("name", "Pay\u202eroll\u202c"),
        ("name", "Pay\u2066roll"),
        ("name", "a\x1b[2Jb"),
        ("description", "Safe \u202eknil siht\u202c"),
        ("description", "a\x1b[2Jb\x07"),
        ("description", "two\nlines"),
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


@pytest.mark.parametrize(
    ("field", "listener", "most"),
    [
        ("max_body_bytes", "max_body_bytes", 2**50),
        ("connect_timeout", "upstream_connect_timeout", 3600.0),
        ("read_timeout", "upstream_read_timeout", 3600.0),
        ("idle_timeout", "idle_timeout", 86400.0),
    ],
)
def test_an_apps_limit_has_the_listeners_upper_bound(
    field: str, listener: str, most: float
) -> None:
    # An app's own limit replaces the listener's: the largest each takes is the same.
    assert getattr(build_app(spec(**{field: most})), field) == most
    assert getattr(Limits(**{listener: most}), listener) == most
    with pytest.raises(ClientError) as err:
        build_app(spec(**{field: most * 2}))
    assert err.value.field == field
    with pytest.raises(ValidationError):
        Limits(**{listener: most * 2})


async def test_the_largest_body_limit_is_stored(store: Store) -> None:
    added = await add_app(store, spec(max_body_bytes=2**50), T0)
    stored = await store.apps.get(added.id)
    assert stored is not None
    assert stored.max_body_bytes == 2**50


async def test_update_refuses_a_body_limit_past_the_bound_with_one_error(store: Store) -> None:
    # `app update echo --max-body 9223372036854775808` crashed in SQLite.
    await add_app(store, spec(), T0)
    with pytest.raises(ClientError) as err:
        await update_app(store, "wiki", {"max_body_bytes": 2**63}, T0)
    assert str(err.value) == "max_body_bytes: must be between 0 and 1125899906842624"


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


def test_a_unix_upstream_longer_than_a_socket_address_is_refused() -> None:
    # The gateway cut such a path to 108 bytes and connected there, to whatever listened.
    room = MAX_SOCKET_PATH_BYTES - len("/s.sock")
    fits = "/" + "d" * (room - 1) + "/s.sock"
    assert build_app(spec(upstream=f"unix:{fits}")).upstream == f"unix:{fits}"
    with pytest.raises(ClientError) as err:
        build_app(spec(upstream=f"unix:/{'d' * room}/s.sock"))
    assert err.value.field == "upstream"
    assert f"at most {MAX_SOCKET_PATH_BYTES}" in str(err.value)


def test_names_and_descriptions_keep_every_script_and_space() -> None:
    app = build_app(spec(name="Zeitplan für 日本", description="Ça va\u00a0— très bien, שלום"))
    assert (app.name, app.description) == ("Zeitplan für 日本", "Ça va\u00a0— très bien, שלום")


@pytest.mark.parametrize("path", ["relative.sock", "/run/../b.sock", "/run/a\x00.sock"])
def test_a_unix_upstream_is_refused_saying_what_it_needs(path: str) -> None:
    with pytest.raises(ClientError) as err:
        build_app(spec(upstream=f"unix:{path}"))
    assert "an absolute path without '..' segments" in str(err.value)
