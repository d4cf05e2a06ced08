"""Migration 0007: one user per e-mail address (ignoring case), on databases that have users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fixtures.store import make_user
from lychgate.errors import Conflict, StoreError
from lychgate.store import open_store
from lychgate.store.engine import make_engine
from lychgate.store.migrate import alembic_config
from lychgate.store.url import normalize_url


@pytest.fixture
async def at_0006(fresh_store_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to 0006, the revision before the unique addresses."""
    await asyncio.to_thread(command.upgrade, alembic_config(fresh_store_url), "0006")
    url = await asyncio.to_thread(normalize_url, fresh_store_url)
    engine = await asyncio.to_thread(make_engine, url)  # both touch the file system
    try:
        yield engine
    finally:
        await engine.dispose()


async def add_rows(engine: AsyncEngine, **emails: str | None) -> None:
    """Users as an older Lychgate wrote them: id -> e-mail address."""
    async with engine.begin() as conn:
        for user_id, email in emails.items():
            await conn.execute(
                text(
                    "INSERT INTO users (id, name, email, is_admin, disabled, created_at, "
                    "changed_in) VALUES (:id, 'Someone', :email, false, false, "
                    "'2030-01-01 00:00:00+00:00', 0)"
                ),
                {"id": user_id, "email": email},
            )


async def revision(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar())


async def test_existing_addresses_are_found_whatever_their_case(
    fresh_store_url: str, at_0006: AsyncEngine
) -> None:
    await add_rows(at_0006, usr_frank="Frank@example.test", usr_ada="ada@example.test", usr_x=None)
    async with await open_store(fresh_store_url) as store:  # migrates to the head
        frank = await store.users.get_by_email("frank@EXAMPLE.test")
        assert frank is not None
        assert (frank.id, frank.email) == ("usr_frank", "Frank@example.test")  # kept as given
        with pytest.raises(Conflict):
            await store.users.add(make_user(email="FRANK@example.test"))
        await store.users.add(make_user(email=None))  # still any number without an address


async def test_shared_addresses_stop_the_upgrade_naming_them(
    fresh_store_url: str, at_0006: AsyncEngine
) -> None:
    await add_rows(
        at_0006,
        usr_1="frank@example.test",
        usr_2="FRANK@example.test",
        usr_3="ada@example.test",
        usr_4="ada@example.test",
        usr_5="bob@example.test",
    )
    with pytest.raises(StoreError) as info:
        await open_store(fresh_store_url)
    message = info.value.message
    assert "frank@example.test (usr_1), FRANK@example.test (usr_2)" in message
    assert "ada@example.test (usr_3), ada@example.test (usr_4)" in message
    assert "bob@example.test" not in message
    assert "UPDATE users SET email = NULL WHERE id = " in message
    assert await revision(at_0006) == "0006"  # nothing changed
    # Once the operator has left each address to one user, the upgrade goes through.
    async with at_0006.begin() as conn:
        await conn.execute(text("UPDATE users SET email = NULL WHERE id IN ('usr_2', 'usr_4')"))
    async with await open_store(fresh_store_url) as store:
        found = await store.users.get_by_email("Frank@example.test")
        assert found is not None
        assert found.id == "usr_1"


async def test_downgrade_to_0006_keeps_the_users(
    fresh_store_url: str, at_0006: AsyncEngine
) -> None:
    await add_rows(at_0006, usr_frank="Frank@example.test")
    config = alembic_config(fresh_store_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.downgrade, config, "0006")
    async with at_0006.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM users"))).mappings().all()
    assert [(r["id"], r["email"]) for r in rows] == [("usr_frank", "Frank@example.test")]
    assert "email_key" not in rows[0]
