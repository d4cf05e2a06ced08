"""Apps updates: an app added, edited, disabled or removed travels as that app, not as every
app (an app change at five thousand apps was a 1.5 MB snapshot to build, send and read)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.fake_authz import FakeAuthz
from gateway.feed_harness import WORLD, following, kinds, push_and_apply, serial_of
from gateway.waiting import eventually
from gateway.world import APPS, World, make_app
from lychgate.domain import App
from lychgate.errors import ConfigError
from lychgate.gateway.feed_json import dumps
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import (
    APPS as APPS_UPDATES,
)
from lychgate.gateway.feed_wire import (
    UPDATES,
    AppsUpdate,
    apps_line,
    parse_line,
    snapshot_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.gateway.snapshot_json import app_to_json
from lychgate.ids import AppId, AppSlug, SessionId, UserId

BY_SLUG = tuple(sorted(APPS, key=lambda app: app.slug))  # as authz orders them
WIKI, ADMIN, GRAFANA = (next(a for a in APPS if a.slug == s) for s in ("wiki", "admin", "grafana"))
NEW = make_app("notes", websockets=True)


def _with_apps(serial: int, apps: list[App], *revoked: str, **more: object) -> ConfigSnapshot:
    ordered = tuple(sorted(apps, key=lambda app: app.slug))
    return WORLD.changed(
        serial=serial, apps=ordered, revoked_sessions=frozenset(map(SessionId, revoked)), **more
    )


BEFORE = _with_apps(1, list(APPS))
# The wiki renamed, grafana disabled, admin removed, notes added, a session ended.
AFTER = _with_apps(
    2,
    [
        replace(WIKI, name="Wiki 2"),
        replace(GRAFANA, enabled=False),
        next(a for a in APPS if a.slug == "old"),
        NEW,
    ],
    "s-1",
)


def _read(line: bytes) -> AppsUpdate:
    parsed = parse_line(line.rstrip(b"\n"))
    assert isinstance(parsed, AppsUpdate)
    return parsed


# -- what may differ --------------------------------------------------------------------------


def test_apps_users_setup_and_sessions_may_differ_and_nothing_else() -> None:
    assert BEFORE.differs_only_in_apps(AFTER)
    assert not BEFORE.differs_only_in_users(AFTER)
    assert BEFORE.differs_only_in_apps(WORLD.changed(serial=5, setup_done=False, users={}))
    for name, value in {
        "issuer": "https://other.example",
        "public_url": "http://localhost:8081",
        "keyring": World().snapshot.keyring,
        "assertion_key": World().snapshot.assertion_key,
    }.items():
        assert not BEFORE.differs_only_in_apps(WORLD.changed(apps=BY_SLUG, **{name: value})), name


# -- the wire -----------------------------------------------------------------------------------


def test_an_apps_line_carries_only_what_changed_and_rebuilds_the_snapshot() -> None:
    line = apps_line(BEFORE, AFTER)
    assert line.count(b"\n") == 1
    raw = json.loads(line)
    assert [app["slug"] for app in raw["apps"]] == ["grafana", "notes", "wiki"]
    assert raw["removed_apps"] == [ADMIN.id]
    assert (raw["users"], raw["removed_users"]) == ({}, [])
    parsed = _read(line)
    assert (parsed.after, parsed.serial, parsed.setup_done) == (1, 2, True)
    applied = parsed.apply(BEFORE)
    assert applied.serial == 2
    assert AFTER.same_content(applied)
    assert applied.apps == AFTER.apps  # ordered by slug, as authz has them
    # The lookups are built again: the disabled and the removed app are gone from them.
    assert set(applied.apps_by_slug) == {"notes", "wiki"}
    assert applied.apps_by_slug[AppSlug("wiki")].name == "Wiki 2"
    assert applied.revoked_sessions == {"s-1"}


def test_an_apps_line_carries_the_users_that_changed_too() -> None:
    users = {UserId("user-1"): UserProfile("Ann B", None), UserId("user-9"): UserProfile("Neo")}
    after = replace(AFTER, users=users, setup_done=False)
    raw = json.loads(apps_line(BEFORE, after))
    assert sorted(raw["users"]) == ["user-1", "user-9"]
    assert raw["removed_users"] == ["user-2"]
    applied = _read(apps_line(BEFORE, after)).apply(BEFORE)
    assert after.same_content(applied)


def test_an_unchanged_app_is_not_sent_even_as_an_equal_copy() -> None:
    copies = [replace(app) for app in APPS]
    raw = json.loads(apps_line(BEFORE, _with_apps(2, copies)))
    assert (raw["apps"], raw["removed_apps"]) == ([], [])


def test_an_apps_line_leaves_out_the_limits_a_gateway_does_not_read() -> None:
    limited = replace(NEW, max_headers=50, idle_timeout=5.0)
    after = _with_apps(2, [*APPS, limited])
    (sent,) = json.loads(apps_line(BEFORE, after, app_limits=False))["apps"]
    assert "max_headers" not in sent
    assert "idle_timeout" not in sent
    (sent,) = json.loads(apps_line(BEFORE, after))["apps"]
    assert (sent["max_headers"], sent["idle_timeout"]) == (50, 5.0)


def test_an_apps_line_lists_session_changes_when_asked() -> None:
    raw = json.loads(apps_line(BEFORE, AFTER, changes=True))
    assert (raw["ended_sessions"], raw["unlisted_sessions"], raw["listed_sessions"]) == (
        ["s-1"],
        [],
        1,
    )
    assert _read(apps_line(BEFORE, AFTER, changes=True)).apply(BEFORE).revoked_sessions == {"s-1"}


_APP = (
    b'{"id":"app_x","slug":"x","name":"X","upstream":"http://127.0.0.1:9","host":null,'
    b'"policy":"any-user","websockets":false,"description":"","icon":"","verify_tls":true,'
    b'"connect_timeout":null,"read_timeout":null,"max_body_bytes":null,"enabled":true,'
    b'"allow_cross_origin":false}'
)
_HEAD = b'{"type":"apps","after":1,"serial":2,"issued_at":0,"setup_done":true,'
_TAIL = b'"users":{},"removed_users":[],"revoked_sessions":[]}'


def test_a_well_formed_apps_line_is_read() -> None:
    parsed = _read(_HEAD + b'"apps":[' + _APP + b'],"removed_apps":["app_y"],' + _TAIL)
    assert [app.slug for app in parsed.changed_apps] == ["x"]
    assert parsed.removed_apps == {AppId("app_y")}


@pytest.mark.parametrize(
    "members",
    [
        b'"apps":[' + _APP + b"," + _APP + b'],"removed_apps":[],',
        b'"apps":[' + _APP + b'],"removed_apps":["app_x"],',
        b'"apps":[],',
        b'"apps":[],"removed_apps":[7],',
        b'"apps":{},"removed_apps":[],',
        b'"apps":[' + _APP.replace(b'"icon":""', b'"icon":"","colour":"red"') + b"],"
        b'"removed_apps":[],',
        b'"apps":[' + _APP.replace(b"http://127.0.0.1:9", b"ftp://x") + b'],"removed_apps":[],',
    ],
    ids=[
        "app twice",
        "changed and removed",
        "no removed_apps",
        "removed not text",
        "apps not a list",
        "unknown app member",
        "bad upstream",
    ],
)
def test_bad_apps_lines_are_refused(members: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_line(_HEAD + members + _TAIL)


def test_an_apps_update_that_does_not_fit_ours_is_refused() -> None:
    gone = _read(apps_line(BEFORE, _with_apps(2, [a for a in APPS if a is not WIKI])))
    without_wiki = gone.apply(BEFORE)
    with pytest.raises(ConfigError, match="removed_apps"):
        gone.apply(without_wiki)  # removes an app it does not hold


def test_an_app_on_a_host_taken_is_refused_as_the_snapshot_would_be() -> None:
    before = World("subdomains", apps=BY_SLUG).snapshot
    raw = json.loads(apps_line(before, replace(before, serial=2)))
    raw["apps"] = [app_to_json(make_app("clash", host="wiki.example.com"), True)]
    with pytest.raises(ConfigError, match="host"):
        _read(dumps(raw)).apply(before)


def test_an_apps_update_is_a_fraction_of_a_snapshot_with_many_apps() -> None:
    many = [make_app(f"app{i:05d}", upstream=f"http://127.0.0.1:{20000 + i}") for i in range(5000)]
    big = _with_apps(1, many)
    edited = _with_apps(2, [*many[:-1], replace(many[-1], name="Renamed")])
    assert len(apps_line(big, edited)) * 1000 < len(snapshot_line(edited))


# -- the serving side ---------------------------------------------------------------------------


async def test_feed_lines_sends_an_app_change_as_an_apps_update_to_a_client_that_asked() -> None:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        yield BEFORE
        await asyncio.sleep(0.01)
        yield AFTER

    asked = feed_lines(source(), heartbeat_interval=5, updates=UPDATES)
    assert kinds([line async for line in asked]) == ["snapshot", "apps"]
    older = feed_lines(source(), heartbeat_interval=5, updates=UPDATES - {APPS_UPDATES})
    lines = [line async for line in older]  # a gateway that predates apps updates
    assert kinds(lines) == ["snapshot", "snapshot"]
    assert json.loads(lines[1])["snapshot"]["serial"] == 2


# -- the client --------------------------------------------------------------------------------


@pytest.mark.loopback
async def test_an_apps_update_is_applied_live(feed_authz: tuple[FakeAuthz, str]) -> None:
    async with following(feed_authz) as (server, holder, client):
        first = holder.current
        assert first is not None
        after = _with_apps(2, [*first.apps, NEW])
        applied = await push_and_apply(server, holder, apps_line(first, after), 2)
        assert applied.apps_by_slug[NEW.slug] == NEW
        assert after.same_content(applied)
        # Then disabled: gone from the lookups at once.
        off = _with_apps(3, [*first.apps, replace(NEW, enabled=False)])
        applied = await push_and_apply(server, holder, apps_line(after, off), 3)
        assert NEW.slug not in applied.apps_by_slug
        assert client.snapshots_applied == 3
        assert server.feed_requests == 1  # all of it on one connection


@pytest.mark.loopback
async def test_an_apps_update_out_of_step_reconnects_for_a_full_snapshot(
    feed_authz: tuple[FakeAuthz, str],
) -> None:
    async with following(feed_authz) as (server, holder, client):
        server.push(apps_line(_with_apps(7, list(APPS)), _with_apps(8, [*APPS, NEW])))
        await eventually(lambda: server.feed_requests >= 2 and client.snapshots_applied >= 2)
        assert client.snapshots_applied == 2
        assert serial_of(holder) == 1  # never applied to the wrong base
        assert holder.current is not None
        assert NEW.slug not in holder.current.apps_by_slug
