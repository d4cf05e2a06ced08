"""authz started on a database with no signing key says so, naming what to run.

It used to migrate an empty database (a database_url naming the wrong one, say) and serve
without a word, every sign-in answering 503.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fixtures.store import T0
from lychgate.authz.server import authz_context
from lychgate.config import Settings, load_settings
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets
from lychgate.secret import Secret
from lychgate.store import open_store

WARNING = "holds no signing key, so nobody can sign in"


@pytest.fixture
def node(tmp_path: Path, secrets: DeploymentSecrets, store_url: str) -> Settings:
    """A node with its secrets.json, whose database_url names an empty database."""
    settings = load_settings(tmp_path, {})
    return settings.model_copy(update={"database_url": Secret(store_url)})


async def test_a_database_without_a_signing_key_is_a_warning_at_start(
    node: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.server"):
        async with authz_context(node):
            pass
    [record] = [r for r in caplog.records if WARNING in r.getMessage()]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"run `lychgate init --dir {node.data_dir}`" in message
    assert "correct database_url" in message


async def test_a_database_with_a_signing_key_starts_quietly(
    node: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with await open_store(node.effective_database_url.reveal()) as store:
        await ensure_signing_key(store.signing_keys, T0)
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.server"):
        async with authz_context(node):
            pass
    assert WARNING not in caplog.text
