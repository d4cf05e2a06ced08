"""``init`` on a second node, pointed at a database that already holds a deployment.

It used to write a secrets.json of its own: authz replicas then served different assertion
keys, and identity assertions failed with unknown_kid depending on the replica. A node given a
wrong secrets.json by hand did the same; the database now records the secrets' fingerprint,
and init compares the node's file with it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import delete

from fixtures.store import T0
from lychgate.deployment.init import prepare_files, prepare_store
from lychgate.deployment.secrets import ensure_secrets, load_secrets, secrets_fingerprint
from lychgate.errors import ConfigError
from lychgate.store import open_store
from lychgate.store.schema import deployment


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
    assert f"(keep secrets.json mode 0600) and run `lychgate init --dir {second}`" in message
    assert f"run `lychgate init --new-secrets --dir {second}`, copy the new file" in message
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
    """For a deployment whose secrets.json is lost everywhere: the new file's fingerprint
    replaces the recorded one."""
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first, second = tmp_path / "node1", tmp_path / "node2"
    await first_node(first, env)
    files = await asyncio.to_thread(prepare_files, second, env, now=T0, new_secrets=True)
    assert files.secrets_created
    assert files.secrets_replaced
    await prepare_store(files.settings, T0, replace_secrets=files.secrets_replaced)
    assert await recorded(store_url) == await fingerprint_of(second)
    # The first node's file is now the old one: refused until the new one is copied there.
    files = await asyncio.to_thread(prepare_files, first, env, now=T0)
    with pytest.raises(ConfigError, match=r"is not this deployment's secrets\.json"):
        await prepare_store(files.settings, T0)
    await asyncio.to_thread(shutil.copy2, second / "secrets.json", first / "secrets.json")
    await prepare_store(files.settings, T0)


async def test_an_empty_database_takes_a_new_deployment(tmp_path: Path, store_url: str) -> None:
    await first_node(tmp_path / "node1", {"LYCHGATE_DATABASE_URL": store_url})


async def recorded(store_url: str) -> str | None:
    async with await open_store(store_url) as store:
        return await store.deployment.secrets_fingerprint()


async def fingerprint_of(root: Path) -> str:
    return secrets_fingerprint(await asyncio.to_thread(load_secrets, root / "secrets.json"))


def test_the_fingerprint_changes_with_every_secret_and_holds_none(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    secrets = ensure_secrets(path, T0)[0]
    fingerprint = secrets_fingerprint(secrets)
    assert secrets_fingerprint(load_secrets(path)) == fingerprint  # read again: the same
    assert len(fingerprint) == 64
    other = ensure_secrets(tmp_path / "other.json", T0)[0]
    for member in ("internal_token", "seal_key", "assertion_key"):
        changed = replace(secrets, **{member: getattr(other, member)})
        assert secrets_fingerprint(changed) != fingerprint, member
    for value in (secrets.internal_token, secrets.seal_key, secrets.assertion_key.private_jwk):
        assert value.reveal() not in fingerprint


async def test_init_records_the_fingerprint_of_its_secrets(tmp_path: Path, store_url: str) -> None:
    first = tmp_path / "node1"
    await first_node(first, {"LYCHGATE_DATABASE_URL": store_url})
    assert await recorded(store_url) == await fingerprint_of(first)


async def test_init_records_it_for_a_deployment_made_before_the_record(
    tmp_path: Path, store_url: str
) -> None:
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first = tmp_path / "node1"
    await first_node(first, env)
    async with await open_store(store_url) as store, store.engine.begin() as conn:
        await conn.execute(delete(deployment))  # as an older Lychgate left it
    files = await asyncio.to_thread(prepare_files, first, env, now=T0)
    await prepare_store(files.settings, T0)
    assert await recorded(store_url) == await fingerprint_of(first)


async def test_a_node_with_other_secrets_is_refused(tmp_path: Path, store_url: str) -> None:
    """A secrets.json copied wrongly (here: another deployment's) stops init on that node."""
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first, second = tmp_path / "node1", tmp_path / "node2"
    await first_node(first, env)
    await asyncio.to_thread(copy_node_files, first, second)
    await asyncio.to_thread(ensure_secrets, tmp_path / "elsewhere.json", T0)
    await asyncio.to_thread(shutil.copy2, tmp_path / "elsewhere.json", second / "secrets.json")
    files = await asyncio.to_thread(prepare_files, second, env, now=T0)
    with pytest.raises(ConfigError) as info:
        await prepare_store(files.settings, T0)
    message = info.value.message
    assert f"{second / 'secrets.json'} is not this deployment's secrets.json" in message
    assert f"Copy secrets.json from a node that works into {second}" in message
    assert "`lychgate init --new-secrets` replaced" in message
    assert info.value.field == "secrets"
    assert await recorded(store_url) == await fingerprint_of(first)  # left as it was


async def test_new_secrets_with_the_file_in_place_replace_nothing(
    tmp_path: Path, store_url: str
) -> None:
    """--new-secrets keeps an existing secrets.json, so the record stays too: a stale file on
    one node must not become the deployment's by it."""
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first = tmp_path / "node1"
    await first_node(first, env)
    files = await asyncio.to_thread(prepare_files, first, env, now=T0, new_secrets=True)
    assert not files.secrets_created
    assert not files.secrets_replaced


async def test_secrets_completed_by_init_on_one_node_are_refused(
    tmp_path: Path, store_url: str
) -> None:
    """init adds a member missing from secrets.json (an older file) on this node alone, so the
    completed file differs from the deployment's: refused, not recorded in its place."""
    env = {"LYCHGATE_DATABASE_URL": store_url}
    first, second = tmp_path / "node1", tmp_path / "node2"
    await first_node(first, env)
    await asyncio.to_thread(copy_node_files, first, second)
    path = second / "secrets.json"
    older = json.loads(await asyncio.to_thread(path.read_text))
    del older["assertion_key"]
    await asyncio.to_thread(path.write_text, json.dumps(older))
    files = await asyncio.to_thread(prepare_files, second, env, now=T0)
    assert files.secrets_created
    assert not files.secrets_replaced
    with pytest.raises(ConfigError, match=r"is not this deployment's secrets\.json"):
        await prepare_store(files.settings, T0, replace_secrets=files.secrets_replaced)
