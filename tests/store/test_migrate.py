"""The migrations, also through Alembic's own command API (what tooling uses)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from fixtures.store import make_user
from lychgate.errors import StoreError
from lychgate.ids import AppSlug
from lychgate.store import open_store
from lychgate.store.engine import make_engine
from lychgate.store.migrate import alembic_config, load_scripts
from lychgate.store.schema import metadata
from lychgate.store.url import normalize_url


def _config(url: str) -> tuple[Config, io.StringIO]:
    config = alembic_config(url)
    output = io.StringIO()
    config.output_buffer = output
    return config, output


def test_there_is_one_head_and_it_is_the_newest_revision() -> None:
    assert load_scripts().get_heads() == ["0012"]


async def test_alembic_commands_upgrade_downgrade_and_upgrade_again(
    fresh_store_url: str,
) -> None:
    # The command API runs env.py, which runs its own loop: keep it off the test's loop.
    config, _ = _config(fresh_store_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    async with await open_store(fresh_store_url, migrate=False) as store:
        await store.users.add(make_user())
    await asyncio.to_thread(command.downgrade, config, "base")
    with pytest.raises(StoreError):
        await open_store(fresh_store_url, migrate=False)
    async with await open_store(fresh_store_url) as store:
        assert list(await store.users.list()) == []


async def test_autogenerate_finds_nothing_to_add(fresh_store_url: str) -> None:
    config, _ = _config(fresh_store_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    # Raises when the table models and the migrations disagree.
    await asyncio.to_thread(command.check, config)


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///offline.db", "postgresql+asyncpg://u@localhost/offline"]
)
async def test_offline_sql_creates_every_table(url: str) -> None:
    config, output = _config(url)
    await asyncio.to_thread(command.upgrade, config, "head", sql=True)
    sql = output.getvalue()
    for table in metadata.sorted_tables:
        assert f"CREATE TABLE {table.name} " in sql


async def test_apps_added_before_0002_refuse_cross_origin_writes(fresh_store_url: str) -> None:
    # An app row written under 0001 gets allow_cross_origin = false: the safer default.
    config, _ = _config(fresh_store_url)
    await asyncio.to_thread(command.upgrade, config, "0001")
    url = await asyncio.to_thread(normalize_url, fresh_store_url)
    engine = await asyncio.to_thread(make_engine, url)  # both touch the file system
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO apps (id, slug, name, upstream, host, policy, websockets, "
                "description, icon, verify_tls, enabled) VALUES ('app_1', 'wiki', 'Wiki', "
                "'http://127.0.0.1:9', NULL, 'any-user', false, '', '', true, true)"
            )
        )
    await engine.dispose()
    async with await open_store(fresh_store_url) as store:  # migrates to the head
        app = await store.apps.get_by_slug(AppSlug("wiki"))
    assert app is not None
    assert app.allow_cross_origin is False


async def test_apps_added_before_0005_keep_the_listeners_request_limits(
    fresh_store_url: str,
) -> None:
    # An app row written under 0004 gets no request limits of its own (NULL: the listener's);
    # stepping back to 0004 drops the columns and keeps the row.
    config, _ = _config(fresh_store_url)
    await asyncio.to_thread(command.upgrade, config, "0004")
    url = await asyncio.to_thread(normalize_url, fresh_store_url)
    engine = await asyncio.to_thread(make_engine, url)  # both touch the file system
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO apps (id, slug, name, upstream, host, policy, websockets, "
                    "description, icon, verify_tls, read_timeout, enabled, allow_cross_origin) "
                    "VALUES ('app_1', 'wiki', 'Wiki', 'http://127.0.0.1:9', NULL, 'any-user', "
                    "false, '', '', true, 30, true, false)"
                )
            )
        async with await open_store(fresh_store_url) as store:  # migrates to the head
            app = await store.apps.get_by_slug(AppSlug("wiki"))
            assert app is not None
            assert (app.max_header_bytes, app.max_headers, app.idle_timeout) == (None, None, None)
            assert app.read_timeout == 30
            await store.apps.update(replace(app, max_header_bytes=2048, idle_timeout=5.0))
        await asyncio.to_thread(command.downgrade, config, "0004")
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM apps"))).mappings().all()
        assert [(r["slug"], r["read_timeout"]) for r in rows] == [("wiki", 30)]
        assert not {"max_header_bytes", "max_headers", "idle_timeout"} & set(rows[0])
    finally:
        await engine.dispose()
