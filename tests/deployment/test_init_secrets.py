"""``init`` on a second node, pointed at a database that already holds a deployment.

It used to write a secrets.json of its own: authz replicas then served different assertion
keys, and identity assertions failed with unknown_kid depending on the replica.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from fixtures.store import T0
from lychgate.deployment.init import prepare_files, prepare_store
from lychgate.deployment.secrets import load_secrets
from lychgate.errors import ConfigError


async def first_node(root: Path, env: dict[str, str]) -> None:
    files = await asyncio.to_thread(prepare_files, root, env, now=T0)
    assert files.secrets_created
    assert await prepare_store(files.settings, T0) is not None  # the first signing key


def copy_node_files(source: Path, target: Path) -> None:
    target.mkdir(mode=0o700)
    for name in ("secrets.json", "lychgate.toml"):
        shutil.copy2(source / name, target / name)


async def test_a_second_node_without_the_secrets_is_refused(tmp_path: Path, store_url: str) -> None:
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first, second = tmp_path / "node1", tmp_path / "node2"
    await first_node(first, env)
    with pytest.raises(ConfigError) as info:
        await asyncio.to_thread(prepare_files, second, env, now=T0)
    message = info.value.message
    assert "already holds a deployment (0 users, 1 signing keys)" in message
    assert f"but {second / 'secrets.json'} does not exist" in message
    assert f"copy secrets.json and lychgate.toml from an existing node into {second}" in message
    assert "`lychgate init --new-secrets`" in message
    assert info.value.field == "secrets"
    assert not second.exists()  # refused before anything was written
    # With the first node's files, it is the same deployment's second node.
    await asyncio.to_thread(copy_node_files, first, second)
    files = await asyncio.to_thread(prepare_files, second, env, now=T0)
    assert not files.secrets_created
    assert await prepare_store(files.settings, T0) is None  # the key is the first node's
    mine, theirs = await asyncio.to_thread(
        lambda: (load_secrets(second / "secrets.json"), load_secrets(first / "secrets.json"))
    )
    assert mine == theirs


async def test_new_secrets_overrides_the_refusal(tmp_path: Path, store_url: str) -> None:
    """For a deployment whose secrets.json is lost everywhere."""
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first, second = tmp_path / "node1", tmp_path / "node2"
    await first_node(first, env)
    files = await asyncio.to_thread(prepare_files, second, env, now=T0, new_secrets=True)
    assert files.secrets_created


async def test_an_empty_database_takes_a_new_deployment(tmp_path: Path, store_url: str) -> None:
    await first_node(tmp_path / "node1", {"LYCHGATE_DATABASE_URL": store_url})
