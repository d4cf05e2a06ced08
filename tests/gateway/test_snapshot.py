"""The config snapshot: validated on construction, strict on the wire, swapped atomically."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from fixtures.clocks import Ticks
from fixtures.keys import ISSUER, make_keyring
from lychgate.domain import App, AppPolicy
from lychgate.errors import ConfigError
from lychgate.gateway.feed_json import dumps, loads
from lychgate.gateway.snapshot import (
    ConfigSnapshot,
    SnapshotHolder,
    UserProfile,
    check_snapshot,
    newly_revoked,
)
from lychgate.ids import AppId, AppSlug, SessionId, UserId
from lychgate.tokens import generate_signing_key

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def app(slug: str, **kw: Any) -> App:
    fields: dict[str, Any] = {
        "id": AppId(f"app_{slug}"),
        "slug": AppSlug(slug),
        "name": slug.title(),
        "upstream": "http://127.0.0.1:3000",
        "host": None,
    }
    fields.update(kw)
    return App(**fields)


def snapshot(**kw: Any) -> ConfigSnapshot:
    fields: dict[str, Any] = {
        "serial": 1,
        "issued_at": NOW,
        "issuer": ISSUER,
        "routing": "subdomains",
        "public_url": "https://auth.example.com",
        "app_domain": "example.com",
        "setup_done": True,
        "apps": (app("wiki"), app("grafana", host="metrics.corp.example")),
        "users": {UserId("user-1"): UserProfile("Ann", "ann@example.com", ("ops",))},
        "revoked_sessions": frozenset({SessionId("gone")}),
        "keyring": make_keyring().public,
        "assertion_key": generate_signing_key(NOW),
    }
    fields.update(kw)
    return ConfigSnapshot(**fields)


def test_derived_lookups() -> None:
    snap = snapshot(apps=(app("wiki"), app("old", enabled=False)))
    assert snap.public_scheme == "https"
    assert snap.public_host == "auth.example.com"
    assert snap.public_port is None
    assert set(snap.apps_by_slug) == {"wiki"}
    assert set(snap.apps_by_host) == {"wiki.example.com"}
    assert snap.secure_cookies


def test_explicit_host_replaces_the_slug_host() -> None:
    snap = snapshot()
    assert snap.apps_by_host["metrics.corp.example"].slug == "grafana"
    assert "grafana.example.com" not in snap.apps_by_host


def test_origins_use_the_public_scheme_and_port() -> None:
    snap = snapshot(public_url="https://auth.example.com:8443")
    assert snap.public_origin == "https://auth.example.com:8443"
    assert snap.served_origins() == {
        "https://auth.example.com:8443",
        "https://wiki.example.com:8443",
        "https://metrics.corp.example:8443",
    }


def test_default_port_is_elided() -> None:
    assert snapshot(public_url="https://auth.example.com:443").public_origin == (
        "https://auth.example.com"
    )


def test_single_host_mode_has_no_app_hosts() -> None:
    snap = snapshot(routing="single-host", public_url="http://127.0.0.1:8080", app_domain="0.0.1")
    assert snap.apps_by_host == {}
    assert snap.served_origins() == {"http://127.0.0.1:8080"}
    assert not snap.secure_cookies


@pytest.mark.parametrize(
    "change",
    [
        {"apps": (app("wiki"), app("wiki", id=AppId("other")))},
        {"apps": (app("wiki"), app("docs", id=AppId("app_wiki")))},
        {"apps": (app("wiki"), app("docs", host="wiki.example.com"))},
        {"apps": (app("auth"),)},
        {"apps": (app("x", host="auth.example.com"),)},
        {"routing": "multi"},
        {"public_url": "ftp://auth.example.com"},
        {"public_url": "https://user@auth.example.com"},
        {"serial": -1},
        {"issued_at": datetime(2030, 1, 1)},
    ],
)
def test_inconsistent_snapshots_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        snapshot(**change)


def test_disabled_apps_do_not_take_hosts() -> None:
    snap = snapshot(apps=(app("wiki", enabled=False), app("docs", host="wiki.example.com")))
    assert snap.apps_by_host["wiki.example.com"].slug == "docs"


def test_the_assertion_key_must_not_verify_app_tokens() -> None:
    keyring = make_keyring()
    with pytest.raises(ConfigError) as err:
        snapshot(keyring=keyring.public, assertion_key=keyring.signer)
    assert err.value.field == "assertion_key"


def test_repr_hides_the_assertion_key() -> None:
    snap = snapshot()
    assert snap.assertion_key is not None
    secret = json.loads(snap.assertion_key.private_jwk.reveal())["d"]
    assert secret not in repr(snap)
    assert "assertion_key" not in repr(snap)


def test_mappings_are_read_only() -> None:
    snap = snapshot()
    with pytest.raises(TypeError):
        snap.users[UserId("x")] = UserProfile("x")  # type: ignore[index]
    with pytest.raises(TypeError):
        snap.apps_by_slug[AppSlug("x")] = app("x")  # type: ignore[index]


# -- wire format --------------------------------------------------------------------------------


def roundtrip(snap: ConfigSnapshot) -> ConfigSnapshot:
    return ConfigSnapshot.from_json(loads(dumps(snap.to_json())))


def test_roundtrip() -> None:
    snap = snapshot(
        apps=(
            app("wiki", policy=AppPolicy.ADMINS, websockets=True, read_timeout=2.5),
            app("docs", enabled=False, max_body_bytes=10, connect_timeout=1, verify_tls=False),
        ),
        users={UserId("u1"): UserProfile("Ann", None, ()), UserId("u2"): UserProfile("", "b@x")},
    )
    again = roundtrip(snap)
    assert again.to_json() == snap.to_json()
    assert again.apps == snap.apps
    assert again.users == snap.users
    assert again.keyring == snap.keyring
    assert again.assertion_keyring is not None
    assert again.assertion_keyring.signer.kid == snap.assertion_key.kid  # type: ignore[union-attr]
    assert again.issued_at == snap.issued_at


def test_roundtrip_without_an_assertion_key() -> None:
    again = roundtrip(snapshot(assertion_key=None))
    assert again.assertion_key is None
    assert again.assertion_keyring is None


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set("extra", 1),
        _delete("serial"),
        _delete("users"),
        _delete("assertion_key"),
        _set("format", 2),
        _set("serial", True),
        _set("serial", "1"),
        _set("serial", 1.5),
        _set("issued_at", "2030-01-01"),
        _set("issued_at", 1e30),
        _set("issuer", ""),
        _set("routing", "everything"),
        _set("setup_done", 1),
        _set("apps", {}),
        _set("apps.0.extra", True),
        _delete("apps.0.enabled"),
        _set("apps.0.policy", "everyone"),
        _set("apps.0.upstream", "ftp://x"),
        _set("apps.0.upstream", "http://admin:secret@10.0.0.1:80"),  # never logged, never used
        _set("apps.0.upstream", "http://x:99999"),
        _set("apps.0.host", "Wiki.Example.com"),
        _set("apps.0.host", ""),
        _set("apps.0.slug", ""),
        _set("apps.0.websockets", "yes"),
        _set("apps.0.read_timeout", 0),
        _set("apps.0.read_timeout", -1),
        _set("apps.0.max_body_bytes", -1),
        _set("apps.0.max_body_bytes", 1.5),
        _set("apps.0.max_header_bytes", 1023),
        _set("apps.0.max_header_bytes", 1024 * 1024 + 1),
        _set("apps.0.max_header_bytes", 2048.5),
        _set("apps.0.max_header_bytes", "2048"),
        _set("apps.0.max_header_bytes", True),
        _set("apps.0.max_headers", 7),
        _set("apps.0.max_headers", 1001),
        _set("apps.0.max_headers", -1),
        _set("apps.0.idle_timeout", 0),
        _set("apps.0.idle_timeout", -1),
        _set("apps.0.idle_timeout", "5"),
        _set("users", []),
        _set("users.user-1.extra", 1),
        _set("users.user-1.groups", "ops"),
        _set("users.user-1.groups", [1]),
        _set("users.user-1.email", ""),
        _set("revoked_sessions", "gone"),
        _set("revoked_sessions", [""]),
        _set("jwks", []),
        _set("jwks", {"keys": [{"kty": "RSA", "kid": "k"}]}),
        _set("assertion_key.jwk", "secret"),
        _set("assertion_key.jwk", {"kty": "EC"}),
        _set("assertion_key.extra", 1),
    ],
)
def test_strict_parsing(mutate: Mutation) -> None:
    doc = copy.deepcopy(snapshot().to_json())
    mutate(doc)
    with pytest.raises(ConfigError):
        check_snapshot(loads(dumps(doc)))


def test_public_jwks_with_private_material_is_refused() -> None:
    doc = snapshot().to_json()
    private = json.loads(make_keyring().signer.private_jwk.reveal())
    doc["jwks"] = {"keys": [private]}
    with pytest.raises(ConfigError):
        ConfigSnapshot.from_json(doc)


def test_errors_never_quote_key_material() -> None:
    doc = snapshot().to_json()
    jwk = doc["assertion_key"]["jwk"]  # type: ignore[index]
    jwk["crv"] = "P-384"
    with pytest.raises(ConfigError) as err:
        ConfigSnapshot.from_json(doc)
    assert jwk["d"] not in str(err.value)


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"{", b'{"a":1,"a":2}', b'{"a":NaN}', b"\xff", b'"text"'],
)
def test_json_reader_is_strict(raw: bytes) -> None:
    with pytest.raises(ConfigError):
        loads(raw)


# -- the holder ---------------------------------------------------------------------------------


def test_holder_starts_empty_and_stale() -> None:
    holder = SnapshotHolder()
    assert holder.current is None
    assert holder.last_updated is None
    assert holder.age() is None
    assert holder.is_stale(3600)


def test_replace_calls_listeners_with_old_and_new() -> None:
    clock = Ticks(100.0)
    holder = SnapshotHolder(clock=clock)
    seen: list[tuple[int | None, int]] = []
    holder.add_listener(lambda old, new: seen.append((old.serial if old else None, new.serial)))
    first, second = snapshot(serial=1), snapshot(serial=2)
    holder.replace(first)
    holder.replace(second)
    assert holder.current is second
    assert seen == [(None, 1), (1, 2)]
    assert holder.last_updated == 100.0


def test_a_failing_listener_does_not_stop_the_swap(caplog: pytest.LogCaptureFixture) -> None:
    holder = SnapshotHolder()
    calls: list[int] = []

    def broken(old: ConfigSnapshot | None, new: ConfigSnapshot) -> None:
        raise RuntimeError("boom")

    holder.add_listener(broken)
    holder.add_listener(lambda old, new: calls.append(new.serial))
    holder.replace(snapshot(serial=7))
    assert holder.current is not None
    assert holder.current.serial == 7
    assert calls == [7]
    assert "snapshot listener failed" in caplog.text


def test_listeners_can_be_removed() -> None:
    holder = SnapshotHolder()
    calls: list[int] = []
    remove = holder.add_listener(lambda old, new: calls.append(new.serial))
    holder.replace(snapshot(serial=1))
    remove()
    remove()  # twice is harmless
    holder.replace(snapshot(serial=2))
    assert calls == [1]


def test_age_and_heartbeats() -> None:
    clock = Ticks(100.0)
    holder = SnapshotHolder(clock=clock)
    holder.replace(snapshot(serial=5))
    clock.now += 40
    assert holder.age() == 40
    assert holder.is_stale(30)
    assert not holder.confirm(4)  # not our serial: still stale
    assert holder.is_stale(30)
    assert holder.confirm(5)
    assert holder.age() == 0
    assert not holder.is_stale(30)


def test_newly_revoked() -> None:
    old = snapshot(revoked_sessions=frozenset({SessionId("a")}))
    new = snapshot(serial=2, revoked_sessions=frozenset(map(SessionId, ["a", "b", "c"])))
    assert newly_revoked(old, new) == {"b", "c"}
    assert newly_revoked(None, old) == {"a"}


def test_app_values_round_trip_exactly() -> None:
    wiki = app("wiki", description="A wiki", icon="book", connect_timeout=0.5)
    snap = snapshot(apps=(wiki,))
    assert roundtrip(snap).apps_by_slug[AppSlug("wiki")] == wiki


# -- members added after format 1 ---------------------------------------------------------------

LATER_APP_MEMBERS = {"max_header_bytes", "max_headers", "idle_timeout"}
FORMAT_1_APP_MEMBERS = {
    "id", "slug", "name", "upstream", "host", "policy", "websockets", "description", "icon",
    "verify_tls", "connect_timeout", "read_timeout", "max_body_bytes", "enabled",
    "allow_cross_origin",
}  # fmt: skip


def _apps_json(snap: ConfigSnapshot) -> list[dict[str, Any]]:
    apps: list[dict[str, Any]] = snap.to_json()["apps"]  # type: ignore[assignment]
    return apps


def test_request_limits_round_trip() -> None:
    wiki = app("wiki", max_header_bytes=4096, max_headers=20, idle_timeout=2.5)
    edge = app("edge", max_header_bytes=1024 * 1024, max_headers=8, idle_timeout=0.01)
    snap = snapshot(apps=(wiki, edge, app("docs", max_headers=1000)))
    (sent_wiki, _, sent_docs) = _apps_json(snap)
    assert {k: sent_wiki[k] for k in LATER_APP_MEMBERS} == {
        "max_header_bytes": 4096,
        "max_headers": 20,
        "idle_timeout": 2.5,
    }
    assert sent_docs["max_headers"] == 1000
    assert not {"max_header_bytes", "idle_timeout"} & set(sent_docs)
    again = roundtrip(snap)
    assert again.apps == snap.apps
    assert again.apps_by_slug[AppSlug("wiki")] == wiki
    assert again.apps_by_slug[AppSlug("edge")].max_header_bytes == 1024 * 1024
    assert again.apps_by_slug[AppSlug("docs")].idle_timeout is None
    assert again.to_json() == snap.to_json()


def test_an_app_without_request_limits_is_sent_as_format_1_had_it() -> None:
    # What a gateway from before these members reads: the same keys, nothing it would refuse.
    (wiki, grafana) = _apps_json(snapshot())
    assert set(wiki) == set(grafana) == FORMAT_1_APP_MEMBERS


def test_missing_or_null_request_limits_read_as_none() -> None:
    doc = snapshot(apps=(app("wiki"), app("docs"))).to_json()
    apps: list[dict[str, Any]] = doc["apps"]  # type: ignore[assignment]
    apps[1].update({"max_header_bytes": None, "max_headers": None, "idle_timeout": None})
    snap = check_snapshot(loads(dumps(doc)))
    for slug in ("wiki", "docs"):
        limits = snap.apps_by_slug[AppSlug(slug)]
        assert (limits.max_header_bytes, limits.max_headers, limits.idle_timeout) == (
            None,
            None,
            None,
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_header_bytes", 512),
        ("max_header_bytes", 2**21),
        ("max_headers", 0),
        ("max_headers", 5000),
        ("idle_timeout", 0),
    ],
)
def test_an_out_of_bounds_request_limit_refuses_the_snapshot_naming_it(
    name: str, value: object
) -> None:
    doc = snapshot().to_json()
    apps: list[dict[str, Any]] = doc["apps"]  # type: ignore[assignment]
    apps[1][name] = value
    with pytest.raises(ConfigError) as err:
        check_snapshot(loads(dumps(doc)))
    assert err.value.field == f"apps[1].{name}"


def test_request_limits_count_in_snapshot_comparisons() -> None:
    snap = snapshot()
    wiki, grafana = snap.apps
    assert snap.same_content(replace(snap, apps=(wiki, grafana)))
    for change in ({"max_header_bytes": 2048}, {"max_headers": 10}, {"idle_timeout": 5.0}):
        assert not snap.same_content(replace(snap, apps=(replace(wiki, **change), grafana)))
