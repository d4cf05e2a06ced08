"""Each app write records the change counter's value it moved to (``apps.changed_in``), so
authz reads only the apps written since its last look; the count and the ids tell of one
removed."""

from __future__ import annotations

from dataclasses import replace

from fixtures.store import make_app, make_user
from lychgate.store import Store


async def test_each_app_write_records_the_value_it_moved_the_counter_to(store: Store) -> None:
    wiki, chat = make_app(), make_app()
    await store.apps.add(wiki)  # 1
    await store.apps.add(chat)  # 2
    await store.users.add(make_user())  # 3: not an app
    await store.apps.update(replace(wiki, name="Wiki 2"))  # 4
    changed = await store.apps.changed_since(0)
    assert [(c.version, c.app.id) for c in changed] == [(2, chat.id), (4, wiki.id)]
    assert changed[1].app.name == "Wiki 2"
    await store.apps.set_enabled(chat.slug, False)  # 5
    assert [(c.version, c.app.enabled) for c in await store.apps.changed_since(4)] == [(5, False)]
    assert await store.apps.set_enabled(chat.slug, False) is False  # no write, no record
    assert await store.apps.changed_since(5) == []


async def test_every_app_from_nothing_a_page_at_a_time(store: Store) -> None:
    apps = [make_app() for _ in range(5)]
    for app in apps:
        await store.apps.add(app)
    first = await store.apps.changed_since(-1, limit=2)
    # An app of the first page changes between pages: it moves to the end, and no other app
    # slips past the reader.
    await store.apps.update(replace(apps[0], name="renamed"))
    rest = await store.apps.changed_since(-1, limit=10, after=first[-1])
    assert [c.app.id for c in first] == [apps[0].id, apps[1].id]
    assert [c.app.id for c in rest] == [a.id for a in apps[2:]] + [apps[0].id]


async def test_the_count_and_the_ids_tell_of_a_removal(store: Store) -> None:
    apps = [make_app() for _ in range(3)]
    for app in apps:
        await store.apps.add(app)
    assert await store.apps.count() == 3
    await store.apps.remove(apps[1].slug)
    assert await store.apps.count() == 2
    assert sorted(await store.apps.ids()) == sorted([apps[0].id, apps[2].id])
