"""Registering the demo apps: once, never over an operator's app (both store backends)."""

from __future__ import annotations

from pathlib import Path

from fixtures.store import T0, make_app
from lychgate.demo.apps import CHAT, DEMO_APPS, WHOAMI, register_demo_apps
from lychgate.ids import AppSlug
from lychgate.store import Store

RUN = Path("/srv/lychgate/run")


async def test_the_demo_apps_are_registered_once(store: Store) -> None:
    first = await register_demo_apps(store, RUN, T0)
    assert [a.slug for a in first.added] == ["whoami", "chat"]
    assert first.kept == ()
    whoami = await store.apps.get_by_slug(AppSlug("whoami"))
    chat = await store.apps.get_by_slug(AppSlug("chat"))
    assert whoami is not None
    assert chat is not None
    assert whoami.upstream == "unix:/srv/lychgate/run/demo-whoami.sock"
    assert chat.upstream == "unix:/srv/lychgate/run/demo-chat.sock"
    assert (whoami.websockets, chat.websockets) == (False, True)
    assert whoami.name == WHOAMI.name
    assert chat.description == CHAT.description

    again = await register_demo_apps(store, RUN, T0)
    assert again.added == ()
    assert [a.slug for a in again.kept] == ["whoami", "chat"]
    assert len(await store.apps.list()) == 2
    added = await store.audit.list(action_prefix="app.added")
    assert len(added) == 2


async def test_an_existing_app_with_a_demo_slug_is_left_alone(store: Store) -> None:
    mine = make_app(slug=AppSlug("whoami"), name="My whoami", upstream="http://127.0.0.1:9000")
    await store.apps.add(mine)
    result = await register_demo_apps(store, RUN, T0)
    assert [a.slug for a in result.added] == ["chat"]
    assert result.kept == (mine,)
    assert await store.apps.get_by_slug(AppSlug("whoami")) == mine


async def test_a_disabled_demo_app_stays_disabled(store: Store) -> None:
    await register_demo_apps(store, RUN, T0)
    chat = await store.apps.get_by_slug(AppSlug("chat"))
    assert chat is not None
    assert await store.apps.set_enabled(chat.slug, False)
    await register_demo_apps(store, RUN, T0)
    after = await store.apps.get_by_slug(AppSlug("chat"))
    assert after is not None
    assert after.enabled is False


def test_sockets_live_in_the_run_directory() -> None:
    assert [d.socket(RUN) for d in DEMO_APPS] == [
        RUN / "demo-whoami.sock",
        RUN / "demo-chat.sock",
    ]
