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
from lychgate.unix_sockets import MAX_SOCKET_PATH_BYTES


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


def test_a_socket_path_too_long_to_bind_is_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    # A long --dir used to crash serve with tracebacks (OSError: AF_UNIX path too long) from
    # uvicorn's bind, once the gateway and the demo apps had started.
    data_dir = tmp_path / ("x" * (MAX_SOCKET_PATH_BYTES - len(str(tmp_path))))
    data_dir.mkdir()
    path = data_dir / "run" / "authz.sock"
    settings = load_settings(data_dir, {})
    with pytest.raises(ConfigError) as caught:
        prepare_socket_dir(settings)
    assert caught.value.field == "authz_listen"
    message = str(caught.value)
    assert str(path) in message
    assert f"{len(os.fsencode(path))} bytes" in message
    assert f"at most {MAX_SOCKET_PATH_BYTES}" in message
    assert 'authz_listen = "unix:/short/path"' in message
    assert not (data_dir / "run").exists()


def test_the_length_limit_counts_bytes_and_allows_the_longest_path(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    room = MAX_SOCKET_PATH_BYTES - len(os.fsencode(theirs)) - 1  # for the socket's name
    longest = theirs / ("s" * room)
    prepare_socket_dir(load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": f"unix:{longest}"}))
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(longest))  # the kernel takes it
    # As many characters, but one of them two bytes long in UTF-8: one byte too many.
    wide = theirs / ("\u00e9" + "s" * (room - 1))
    with pytest.raises(ConfigError, match=f"is {MAX_SOCKET_PATH_BYTES + 1} bytes long"):
        prepare_socket_dir(load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": f"unix:{wide}"}))


def test_a_missing_deployment_directory_is_not_created(tmp_path: Path) -> None:
    # `lychgate authz --dir <typo>` used to leave <typo>/ and <typo>/run/ behind.
    typo = tmp_path / "typo_dir"
    with pytest.raises(ConfigError, match=r"deployment directory .* does not exist") as caught:
        prepare_socket_dir(load_settings(typo, {}))
    assert caught.value.field == "data_dir"
    assert str(typo) in str(caught.value)
    assert not typo.exists()


def test_only_the_sockets_own_directory_is_made_never_its_parents(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    listen = f"unix:{missing / 'sockets' / 'a.sock'}"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        prepare_socket_dir(load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": listen}))
    assert caught.value.field == "authz_listen"
    assert not missing.exists()
    missing.mkdir()
    prepare_socket_dir(load_settings(tmp_path, {"LYCHGATE_AUTHZ_LISTEN": listen}))
    assert _mode(missing / "sockets") == 0o700


def test_a_data_directory_this_user_may_not_write_to_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only or immutable data directory (root is refused only by chattr +i or a
    # read-only mount, which a test cannot make) ended `lychgate authz` in a traceback.
    settings = load_settings(tmp_path, {})

    def refuse(self: Path, mode: int = 0o777) -> None:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ConfigError) as err:
        prepare_socket_dir(settings)
    assert str(err.value).endswith(
        f"cannot prepare authz's socket directory {tmp_path / 'run'}: Operation not permitted"
    )
