"""``serve --demo`` before it forks: store, signing key, demo apps, and the admin setup link."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lychgate.config import Settings
from lychgate.demo.bootstrap import bootstrap_demo
from lychgate.deployment.init import prepare_files
from lychgate.deployment.users import add_user
from lychgate.store import open_store

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return prepare_files(data_dir, {}, now=NOW).settings


async def test_a_fresh_deployment_gets_apps_a_key_and_a_setup_link(settings: Settings) -> None:
    start = await bootstrap_demo(settings, NOW)
    assert [a.slug for a in start.registration.added] == ["whoami", "chat"]
    assert start.setup_link is not None
    assert start.setup_link.startswith("http://localhost:8080/.lychgate/enroll/")
    async with await open_store(settings.effective_database_url.reveal()) as store:
        assert len(await store.signing_keys.list()) == 1
        assert {a.upstream for a in await store.apps.list()} == {
            f"unix:{settings.data_dir}/run/demo-whoami.sock",
            f"unix:{settings.data_dir}/run/demo-chat.sock",
        }


async def test_running_it_again_adds_nothing(settings: Settings) -> None:
    first = await bootstrap_demo(settings, NOW)
    again = await bootstrap_demo(settings, NOW)
    assert again.registration.added == ()
    assert len(again.registration.kept) == 2
    assert again.setup_link is not None
    assert again.setup_link != first.setup_link  # a fresh one-time link each start
    async with await open_store(settings.effective_database_url.reveal()) as store:
        assert len(await store.signing_keys.list()) == 1


async def test_no_setup_link_once_an_admin_exists(settings: Settings) -> None:
    async with await open_store(settings.effective_database_url.reveal()) as store:
        await add_user(store, name="Admin", email="admin@example.test", is_admin=True, now=NOW)
    start = await bootstrap_demo(settings, NOW)
    assert start.setup_link is None
