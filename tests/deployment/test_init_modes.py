"""The deployment directory and its config are private, however they came to exist.

A directory made beforehand (``mkdir``, so 0755 at the usual umask) stayed 0755, and the
config was written 0644, although it may hold ``database_url`` with a password: any local
user could read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fixtures.store import T0
from lychgate.deployment.init import prepare_files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_directory_made_beforehand_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "made-by-hand"
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # whatever the umask
    prepare_files(root, {}, now=T0)
    assert _mode(root) == 0o700
    assert _mode(root / "lychgate.toml") == 0o600


def test_a_readable_config_is_made_private_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "deployment"
    prepare_files(root, {}, now=T0)
    config = root / "lychgate.toml"
    text = config.read_text() + '# database_url = "postgresql://lychgate:secret@db/lychgate"\n'
    config.write_text(text)
    config.chmod(0o644)
    prepare_files(root, {}, now=T0)
    assert _mode(config) == 0o600
    assert config.read_text() == text  # never rewritten, only its mode narrowed


def test_a_config_this_user_may_not_change_is_left_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An operator's tooling may own it (root, 0640) or mount it read-only: init and serve
    # crashed with a traceback (PermissionError) where they had worked before.
    root = tmp_path / "deployment"
    prepare_files(root, {}, now=T0)
    config = root / "lychgate.toml"
    config.chmod(0o640)
    read_only = config.stat()

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "chmod", refuse)  # what a read-only mount or chattr +i answers
        prepare_files(root, {}, now=T0)
    assert config.stat().st_mode == read_only.st_mode
    assert "could not narrow" in caplog.text
