"""Apps, over both backends."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from fixtures.store import make_app
from lychgate.domain import AppPolicy
from lychgate.errors import Conflict, NotFound
from lychgate.ids import AppId, AppSlug
from lychgate.store import Store


async def test_round_trip_with_every_field(store: Store) -> None:
    app = make_app(
        host="wiki.example.test",
        policy=AppPolicy.ADMINS,
        websockets=True,
        description="The team wiki",
        icon="/static/wiki.svg",
        verify_tls=False,
        connect_timeout=2.5,
        read_timeout=30.0,
        max_body_bytes=10 * 2**30,
        enabled=False,
        upstream="unix:/run/wiki.sock",
        max_header_bytes=1024 * 1024,
        max_headers=8,
        idle_timeout=0.25,
    )
    await store.apps.add(app)
    assert await store.apps.get(app.id) == app
    assert await store.apps.get_by_slug(app.slug) == app
    assert await store.apps.get_by_host("wiki.example.test") == app


async def test_request_limits_are_stored_cleared_and_default_to_none(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    stored = await store.apps.get(app.id)
    assert (stored.max_header_bytes, stored.max_headers, stored.idle_timeout) == (None, None, None)
    limited = replace(app, max_header_bytes=4096, max_headers=20, idle_timeout=7.5)
    version = await store.config_changes.version()
    assert version is not None
    await store.apps.update(limited)
    assert await store.config_changes.version() == version + 1  # gateways hear of it
    stored = await store.apps.get(app.id)
    assert (stored.max_header_bytes, stored.max_headers, stored.idle_timeout) == (4096, 20, 7.5)
    await store.apps.update(app)  # None again: back to the listener's limits
    stored = await store.apps.get(app.id)
    assert (stored.max_header_bytes, stored.max_headers, stored.idle_timeout) == (None, None, None)
    assert [a.idle_timeout for a in await store.apps.list()] == [None]


async def test_defaults_round_trip(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    stored = await store.apps.get_by_slug(app.slug)
    assert stored == app
    assert stored is not None
    assert stored.policy is AppPolicy.ANY_USER


async def test_lookups_of_missing_apps(store: Store) -> None:
    assert await store.apps.get_by_slug(AppSlug("nope")) is None
    assert await store.apps.get_by_host("nope.example.test") is None
    with pytest.raises(NotFound):
        await store.apps.get(AppId("nope"))


async def test_duplicate_slug_is_a_conflict_on_slug(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    with pytest.raises(Conflict) as info:
        await store.apps.add(make_app(slug=app.slug))
    assert info.value.field == "slug"


async def test_duplicate_host_is_a_conflict_on_host(store: Store) -> None:
    await store.apps.add(make_app(host="a.example.test"))
    with pytest.raises(Conflict) as info:
        await store.apps.add(make_app(host="a.example.test"))
    assert info.value.field == "host"


async def test_duplicate_id_is_a_conflict_on_id(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    with pytest.raises(Conflict) as info:
        await store.apps.add(make_app(id=app.id))
    assert info.value.field == "id"


async def test_many_apps_may_have_no_host(store: Store) -> None:
    await store.apps.add(make_app(host=None))
    await store.apps.add(make_app(host=None))
    assert len(await store.apps.list()) == 2


async def test_list_is_by_slug(store: Store) -> None:
    apps = [make_app(slug=AppSlug(s)) for s in ("charlie", "alpha", "bravo")]
    for app in apps:
        await store.apps.add(app)
    assert [a.slug for a in await store.apps.list()] == ["alpha", "bravo", "charlie"]


async def test_update_replaces_every_field_but_enabled_including_the_slug(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    changed = replace(app, slug=AppSlug("renamed"), host="new.example.test", enabled=False)
    await store.apps.update(changed)
    # enabled is set_enabled's alone: an update that read the row before a disable (app
    # update beside app disable) wrote enabled=True back, and the app was live again.
    assert await store.apps.get(app.id) == replace(changed, enabled=True)
    assert await store.apps.get_by_slug(app.slug) is None


async def test_set_enabled_switches_once(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    results = await asyncio.gather(*(store.apps.set_enabled(app.slug, False) for _ in range(3)))
    assert sorted(results) == [False, False, True]  # of three at once, one disabled it
    assert (await store.apps.get(app.id)).enabled is False
    await store.apps.update(replace(app, name="Renamed"))  # read while it was enabled
    assert (await store.apps.get(app.id)).enabled is False  # stays disabled
    assert await store.apps.set_enabled(app.slug, True)
    assert not await store.apps.set_enabled(AppSlug("nothing"), True)


async def test_update_into_a_taken_host_is_a_conflict(store: Store) -> None:
    await store.apps.add(make_app(host="taken.example.test"))
    app = make_app()
    await store.apps.add(app)
    with pytest.raises(Conflict) as info:
        await store.apps.update(replace(app, host="taken.example.test"))
    assert info.value.field == "host"
    assert await store.apps.get(app.id) == app


async def test_update_of_a_missing_app_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.apps.update(make_app())


async def test_remove(store: Store) -> None:
    app = make_app()
    await store.apps.add(app)
    await store.apps.remove(app.slug)
    assert await store.apps.get_by_slug(app.slug) is None
    with pytest.raises(NotFound):
        await store.apps.remove(app.slug)
