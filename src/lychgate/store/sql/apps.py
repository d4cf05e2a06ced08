"""Apps over SQL: the upstreams the gateway serves, and their policies.

Every write records the change counter's value it moved to (``apps.changed_in``, as
``users.changed_in``), so authz reads only the apps written since its last look.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update

from lychgate.domain import App, AppPolicy, app_to_dict
from lychgate.errors import NotFound
from lychgate.ids import AppId, AppSlug
from lychgate.store.schema import apps
from lychgate.store.sql.base import CURRENT, SqlRepository
from lychgate.store.values import ChangedApp


def _app(row: Row[Any]) -> App:
    return App(
        id=AppId(row.id),
        slug=AppSlug(row.slug),
        name=row.name,
        upstream=row.upstream,
        host=row.host,
        policy=AppPolicy(row.policy),
        websockets=bool(row.websockets),
        description=row.description,
        icon=row.icon,
        verify_tls=bool(row.verify_tls),
        connect_timeout=row.connect_timeout,
        read_timeout=row.read_timeout,
        max_body_bytes=row.max_body_bytes,
        enabled=bool(row.enabled),
        allow_cross_origin=bool(row.allow_cross_origin),
        max_header_bytes=row.max_header_bytes,
        max_headers=row.max_headers,
        idle_timeout=row.idle_timeout,
    )


def _values(app: App) -> dict[str, object]:
    values = app_to_dict(app)
    values["changed_in"] = CURRENT
    return values


class SqlAppRepository(SqlRepository):
    __slots__ = ()
    TABLE = "apps"
    FIELDS = ("id", "slug", "host")

    async def add(self, app: App) -> None:
        await self._write(insert(apps).values(_values(app)), config=True)

    async def get(self, app_id: AppId) -> App:
        row = await self._one(select(apps).where(apps.c.id == app_id))
        if row is None:
            raise NotFound("no such app", field="app_id")
        return _app(row)

    async def get_by_slug(self, slug: AppSlug) -> App | None:
        row = await self._one(select(apps).where(apps.c.slug == slug))
        return None if row is None else _app(row)

    async def get_by_host(self, host: str) -> App | None:
        row = await self._one(select(apps).where(apps.c.host == host))
        return None if row is None else _app(row)

    async def list(self) -> Sequence[App]:
        rows = await self._all(select(apps).order_by(apps.c.slug))
        return [_app(row) for row in rows]

    async def changed_since(
        self, version: int, *, limit: int = 1000, after: ChangedApp | None = None
    ) -> Sequence[ChangedApp]:
        position = None if after is None else (after.version, after.app.id)
        rows = await self._changed_rows(apps, version, limit=limit, after=position)
        return [ChangedApp(int(row.changed_in), _app(row)) for row in rows]

    async def count(self) -> int:
        return int(await self._scalar(select(func.count()).select_from(apps)))

    async def ids(self) -> Sequence[AppId]:
        return [AppId(row.id) for row in await self._all(select(apps.c.id))]

    async def update(self, app: App) -> None:
        values = _values(app)
        del values["id"]
        # Not enabled: an update that read the row before a disable must not undo it.
        del values["enabled"]
        changed = await self._write(
            update(apps).where(apps.c.id == app.id).values(values), config=True
        )
        if not changed:
            raise NotFound("no such app", field="app_id")

    async def set_enabled(self, slug: AppSlug, enabled: bool) -> bool:
        switch = (
            update(apps)
            .where(apps.c.slug == slug, apps.c.enabled.is_(not enabled))
            .values(enabled=enabled, changed_in=CURRENT)
        )
        return await self._write(switch, config=True) > 0

    async def remove(self, slug: AppSlug) -> None:
        changed = await self._write(delete(apps).where(apps.c.slug == slug), config=True)
        if not changed:
            raise NotFound("no such app", field="slug")
