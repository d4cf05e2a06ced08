"""authz's unix socket directory (lychgate.authz.server.prepare_socket_dir).

The deployment's own run directory is kept 0700, so only its owner reaches the internal API.
A directory the operator names is theirs: never changed (it may be shared), refused when
others may write to it, and nothing but a stale socket is ever removed from the socket's path.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from lychgate.authz.server import prepare_socket_dir
from lychgate.config import load_settings
from lychgate.errors import ConfigError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _stale_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # closed without unlinking, as a crashed authz leaves it


def test_the_deployments_run_directory_is_made_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {})
    run = tmp_path / "run"
    prepare_socket_dir(settings)
    assert _mode(run) == 0o700
    os.chmod(run, 0o755)  # noqa: S103 (loosened by hand, on purpose)
    _stale_socket(run / "authz.sock")
    prepare_socket_dir(settings)
    assert _mode(run) == 0o700
    assert not (run / "authz.sock").exists()  # the stale socket is gone


def test_an_operators_directory_is_never_changed(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chmod(theirs, 0o755)  # noqa: S103 (a shared directory, on purpose)
    settings = load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": f"unix:{theirs / 'a.sock'}"})
    prepare_socket_dir(settings)
    assert _mode(theirs) == 0o755


def test_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 (as /tmp is, on purpose)
    settings = load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": f"unix:{shared / 'a.sock'}"})
    with pytest.raises(ConfigError, match="may be written by other users"):
        prepare_socket_dir(settings)
    assert _mode(shared) == 0o1777  # left as it was


def test_only_a_socket_is_removed_from_the_sockets_path(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    precious = theirs / "notes.txt"
    precious.write_text("keep me")
    settings = load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": f"unix:{precious}"})
    with pytest.raises(ConfigError, match="is not a socket"):
        prepare_socket_dir(settings)
    assert precious.read_text() == "keep me"


def test_a_socket_another_authz_listens_on_is_refused(tmp_path: Path) -> None:
    # A second `serve` on the same deployment used to unlink the running authz's socket,
    # cutting its gateway off from it, before failing on the gateway's port.
    settings = load_settings(tmp_path, {})
    prepare_socket_dir(settings)
    path = tmp_path / "run" / "authz.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(ConfigError, match="another authz is listening there"):
            prepare_socket_dir(settings)
        assert path.exists()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))  # still reachable
