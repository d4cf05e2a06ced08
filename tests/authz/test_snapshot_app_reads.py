"""What a look reads of the apps: those written since the last look, not every app.

An app edit at five thousand apps used to read all of them (a fifth of a second) and rebuild
and resend the whole snapshot; now it reads the app edited (``apps.changed_in``), and the feed
sends that app alone. A fake around the real apps port counts what each look asks for.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import insert, update

from fixtures.store import make_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher, build_snapshot
from lychgate.domain import App, app_to_dict
from lychgate.gateway.feed_wire import AppsUpdate, apps_line, parse_line
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import AppSlug
from lychgate.store.schema import apps as apps_table
from lychgate.store.sql.base import BUMP

CROWD = 30


class CountingApps:
    """The apps port, counting each read and the rows it gives."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _count(self, name: str, *args: Any, **page: Any) -> Any:
        got = await getattr(self._inner, name)(*args, **page)
        self.calls[name] += 1
        self.rows[name] += got if isinstance(got, int) else len(got)
        return got

    async def list(self) -> Any:
        return await self._count("list")

    async def changed_since(self, version: int, **page: Any) -> Any:
        return await self._count("changed_since", version, **page)

    async def count(self) -> Any:
        return await self._count("count")

    async def ids(self) -> Any:
        return await self._count("ids")

    def reset(self) -> None:
        self.calls.clear()
        self.rows.clear()


async def _crowd(ctx: AuthzContext) -> tuple[list[App], CountingApps, SnapshotPublisher]:
    """``CROWD`` apps stored, a counting port, and a publisher that has made its first look."""
    crowd = [make_app(slug=AppSlug(f"app-{n:02d}")) for n in range(CROWD)]
    for app in crowd:
        await ctx.store.apps.add(app)
    counting = CountingApps(ctx.store.apps)
    ctx.store.apps = counting
    publisher = SnapshotPublisher(ctx)
    assert await publisher.refresh()
    assert publisher.apps_read == CROWD
    counting.reset()
    return crowd, counting, publisher


def _latest(publisher: SnapshotPublisher) -> ConfigSnapshot:
    latest = publisher.latest
    assert latest is not None
    return latest


async def test_an_app_edit_reads_that_app_alone(ctx: AuthzContext) -> None:
    crowd, counting, publisher = await _crowd(ctx)
    first = _latest(publisher)
    await ctx.store.apps.update(replace(crowd[3], name="Renamed"))  # lychgate app update
    assert await publisher.refresh()
    assert counting.rows["changed_since"] == 1
    assert "list" not in counting.calls  # never every app
    assert "ids" not in counting.calls  # nothing removed: the count says so
    assert (publisher.full_builds, publisher.apps_read) == (1, CROWD + 1)
    second = _latest(publisher)
    assert second.apps_by_slug[crowd[3].slug].name == "Renamed"
    # The other apps are the very objects of the last snapshot: the feed sends one app.
    assert sum(a is b for a, b in zip(first.apps, second.apps, strict=True)) == CROWD - 1
    update = parse_line(apps_line(first, second).rstrip(b"\n"))
    assert isinstance(update, AppsUpdate)
    assert [app.slug for app in update.changed_apps] == [crowd[3].slug]
    assert second.same_content(update.apply(first))


async def test_an_app_added_disabled_and_removed_is_seen_at_the_next_look(
    ctx: AuthzContext,
) -> None:
    crowd, counting, publisher = await _crowd(ctx)
    added = make_app(slug=AppSlug("app-new"))
    await ctx.store.apps.add(added)  # lychgate app add, from another process
    assert await publisher.refresh()
    assert added.slug in _latest(publisher).apps_by_slug
    await ctx.store.apps.set_enabled(added.slug, False)  # lychgate app disable
    assert await publisher.refresh()
    assert added.slug not in _latest(publisher).apps_by_slug
    assert counting.rows["changed_since"] == 2
    assert "ids" not in counting.calls
    await ctx.store.apps.remove(crowd[0].slug)  # lychgate app remove: no row left to read
    assert await publisher.refresh()
    assert crowd[0].id not in {app.id for app in _latest(publisher).apps}
    assert counting.calls["ids"] == 1  # the count told of a removal; the ids said which
    assert "list" not in counting.calls
    assert publisher.full_builds == 1


async def test_a_look_without_changes_reads_no_app(ctx: AuthzContext) -> None:
    _, counting, publisher = await _crowd(ctx)
    for _ in range(3):
        assert not await publisher.refresh()
    assert counting.calls == Counter()


async def test_an_incremental_look_agrees_with_a_full_build(ctx: AuthzContext) -> None:
    crowd, _, publisher = await _crowd(ctx)
    await ctx.store.apps.update(replace(crowd[1], upstream="http://127.0.0.1:9001"))
    await ctx.store.apps.set_enabled(crowd[2].slug, False)
    await ctx.store.apps.remove(crowd[4].slug)
    await ctx.store.apps.add(make_app(slug=AppSlug("app-zz")))
    assert await publisher.refresh()
    latest = _latest(publisher)
    assert publisher.full_builds == 1
    full = await build_snapshot(ctx, serial=latest.serial + 1, now=ctx.clock())
    assert latest.same_content(full)
    assert [app.slug for app in latest.apps] == sorted(app.slug for app in latest.apps)


async def test_the_full_rebuild_finds_a_change_no_writer_recorded(ctx: AuthzContext) -> None:
    # A writer that neither bumps the counter nor records its change (an older replica during
    # an upgrade): the full rebuild, once a minute, reads every app again.
    crowd, counting, _ = await _crowd(ctx)
    publisher = SnapshotPublisher(ctx, full_every=0)  # each look is the safety net's
    assert await publisher.refresh()
    first = _latest(publisher)
    async with ctx.store.engine.begin() as conn:
        await conn.execute(
            update(apps_table).where(apps_table.c.id == crowd[5].id).values(name="Behind")
        )
    assert await publisher.refresh()
    second = _latest(publisher)
    assert second.apps_by_slug[crowd[5].slug].name == "Behind"
    assert publisher.full_builds == 2
    # Apps read again but unchanged stay the very same objects: the feed sends one app.
    changed = json.loads(apps_line(first, second))["apps"]
    assert [app["slug"] for app in changed] == [crowd[5].slug]
    assert counting.rows["changed_since"] == 2 * CROWD


async def _as_an_older_writer(ctx: AuthzContext, stmt: Any) -> None:
    """``stmt`` as a writer older than apps.changed_in makes it: the counter bumped, in the
    same transaction, and nothing recorded (the row keeps its value, a new row gets 0)."""
    async with ctx.store.engine.begin() as conn:
        await conn.execute(BUMP)
        await conn.execute(stmt)


async def test_an_older_writers_app_change_is_seen_at_the_next_look(ctx: AuthzContext) -> None:
    # During an upgrade an older CLI or replica still bumps the counter, but records no
    # changed_in: the look reads every app, as looks did before, not the minute's rebuild.
    crowd, counting, publisher = await _crowd(ctx)
    disable = update(apps_table).where(apps_table.c.id == crowd[7].id).values(enabled=False)
    await _as_an_older_writer(ctx, disable)
    assert await publisher.refresh()
    assert crowd[7].slug not in _latest(publisher).apps_by_slug
    assert publisher.full_builds == 1  # not the safety net: this look
    assert counting.rows["changed_since"] == CROWD  # every app read again
    added = make_app(slug=AppSlug("app-old-writer"))
    values = {**app_to_dict(added), "changed_in": 0}
    await _as_an_older_writer(ctx, insert(apps_table).values(values))
    assert await publisher.refresh()
    assert added.slug in _latest(publisher).apps_by_slug
    assert publisher.full_builds == 1
