"""Deployment secrets: created private, completed but never replaced, never printed."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lychgate.deployment.secrets import ensure_secrets, load_secrets
from lychgate.errors import ConfigError

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_created_private_and_stable(data_dir: Path) -> None:
    path = data_dir / "secrets.json"
    first, created = ensure_secrets(path, NOW)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created = ensure_secrets(path, NOW)
    assert not created
    assert again == first
    assert len(first.seal_key_bytes()) == 32


def test_missing_members_are_added_and_others_kept(data_dir: Path) -> None:
    path = data_dir / "secrets.json"
    original, _ = ensure_secrets(path, NOW)
    raw = json.loads(path.read_text())
    del raw["assertion_key"]
    path.write_text(json.dumps(raw))
    completed, changed = ensure_secrets(path, NOW)
    assert changed
    assert completed.internal_token == original.internal_token
    assert completed.seal_key == original.seal_key
    assert completed.assertion_key.kid != original.assertion_key.kid


def test_secrets_never_print(data_dir: Path) -> None:
    found, _ = ensure_secrets(data_dir / "secrets.json", NOW)
    text = repr(found)
    assert found.internal_token.reveal() not in text
    assert found.seal_key.reveal() not in text
    assert '"d"' not in text


@pytest.mark.parametrize(
    "content",
    ["", "[]", "{}", '{"internal_token": "x", "seal_key": "AA", "assertion_key": {}}'],
)
def test_damaged_files_are_config_errors(data_dir: Path, content: str) -> None:
    path = data_dir / "secrets.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_secrets(path)
    assert err.value.field == "secrets"


def test_missing_file_says_run_init(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="lychgate init"):
        load_secrets(data_dir / "secrets.json")
