"""authz refuses to start with a secrets.json other than the one its database records.

A node whose secrets.json was copied wrongly by hand (or edited) used to start, and its authz
served other assertion keys than the other replicas: apps saw unknown_kid depending on the
replica, with nothing in any log.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fixtures.store import T0
from lychgate.authz.server import authz_context
from lychgate.config import Settings, load_settings
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets, secrets_fingerprint
from lychgate.errors import ConfigError
from lychgate.secret import Secret
from lychgate.store import open_store


@pytest.fixture
def node(tmp_path: Path, secrets: DeploymentSecrets, store_url: str) -> Settings:
    """A node with its secrets.json (``secrets``), over the deployment's database."""
    settings = load_settings(tmp_path, {})
    return settings.model_copy(update={"database_url": Secret(store_url)})


async def recorded(node: Settings) -> str | None:
    async with await open_store(node.effective_database_url.reveal()) as store:
        return await store.deployment.secrets_fingerprint()


async def record(node: Settings, fingerprint: str) -> None:
    async with await open_store(node.effective_database_url.reveal()) as store:
        await store.deployment.record_secrets_fingerprint(fingerprint)


async def test_other_secrets_than_the_recorded_ones_refuse_the_start(
    node: Settings, tmp_path: Path
) -> None:
    theirs, _ = await asyncio.to_thread(ensure_secrets, tmp_path / "node1.json", T0)
    await record(node, secrets_fingerprint(theirs))
    with pytest.raises(ConfigError) as info:
        async with authz_context(node):
            pytest.fail("authz started with secrets other than the deployment's")
    message = info.value.message
    secrets_file = node.data_dir / "secrets.json"
    assert f"{secrets_file} is not this deployment's secrets.json" in message
    assert f"Copy secrets.json from a node that works into {node.data_dir}" in message
    assert "`lychgate init --new-secrets` replaced the deployment's secrets" in message
    assert info.value.field == "secrets"
    assert await recorded(node) == secrets_fingerprint(theirs)  # left as it was


async def test_the_recorded_secrets_start(node: Settings, secrets: DeploymentSecrets) -> None:
    await record(node, secrets_fingerprint(secrets))
    async with authz_context(node) as ctx:
        assert ctx.secrets == secrets


async def test_with_none_recorded_the_first_authz_records_its_own(
    node: Settings, secrets: DeploymentSecrets, caplog: pytest.LogCaptureFixture
) -> None:
    """A deployment from before the record: the first node to start records its file."""
    with caplog.at_level(logging.INFO, logger="lychgate.authz.server"):
        async with authz_context(node):
            pass
    assert await recorded(node) == secrets_fingerprint(secrets)
    assert f"recorded the fingerprint of {node.data_dir / 'secrets.json'}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lychgate.authz.server"):
        async with authz_context(node):  # the second start: it matches, nothing to record
            pass
    assert "recorded the fingerprint" not in caplog.text
