"""``lychgate device enroll`` checks its key path before it spends the one-time link.

A link is spent the moment the server accepts the new key. Every problem with ``--key`` that
can be found before that (a directory there, a parent that is a file, a directory we may not
write to) must be reported then, with the link still good; and a failure after it must name
the device to revoke, since its key is gone.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from device.fakeserver import FakeServer
from lychgate.cli.main import app
from lychgate.device.keyfile import load_key_file

runner = CliRunner()
CODE = "code-1"


def enroll(server: FakeServer, key: Path, *more: str) -> Result:
    """``lychgate device enroll LINK --key KEY`` with the fake server as the network."""
    link = f"{server.public_url}/.lychgate/enroll/{CODE}"
    args = ["device", "enroll", link, "--key", str(key), *more]
    return runner.invoke(app, args, obj=server.connector(), env={"COLUMNS": "200"})


def assert_refused_before_the_link_is_spent(result: Result, server: FakeServer, says: str) -> None:
    """One clear line, non-zero, no device made, and the link still good."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert server.enroll_bodies == []  # the server was never asked
    assert CODE in server.codes
    assert not server.devices


def assert_link_still_works(server: FakeServer, tmp_path: Path) -> None:
    good = tmp_path / "good" / "device.json"
    result = enroll(server, good)
    assert result.exit_code == 0, result.output
    assert load_key_file(good).record.device_id in server.devices
    assert len(server.devices) == 1


def no_temporary_files_in(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a directory\n")
    return path


def test_a_parent_that_is_a_regular_file(server: FakeServer, tmp_path: Path, afile: Path) -> None:
    result = enroll(server, afile / "kim.json")
    assert_refused_before_the_link_is_spent(result, server, f"{afile} is not a directory")
    assert afile.read_text() == "not a directory\n"
    assert_link_still_works(server, tmp_path)


def test_a_grandparent_that_is_a_regular_file(
    server: FakeServer, tmp_path: Path, afile: Path
) -> None:
    result = enroll(server, afile / "sub" / "kim.json")
    assert_refused_before_the_link_is_spent(result, server, "not a directory")
    assert_link_still_works(server, tmp_path)


@pytest.mark.parametrize("force", [False, True])
def test_a_directory_is_refused_as_the_key_file(
    server: FakeServer, tmp_path: Path, force: bool
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    result = enroll(server, keys, *(["--force"] if force else []))
    assert_refused_before_the_link_is_spent(result, server, f"{keys} is a directory")
    assert "already holds a device key" not in result.output
    assert keys.is_dir()
    assert list(keys.iterdir()) == []
    assert_link_still_works(server, tmp_path)


def test_a_symlink_to_a_directory_is_refused_even_with_force(
    server: FakeServer, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (tmp_path / "link").symlink_to(keys)
    result = enroll(server, tmp_path / "link", "--force")
    assert_refused_before_the_link_is_spent(result, server, "is a directory")
    assert_link_still_works(server, tmp_path)


def refuse_creating_files_in(directory: Path, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``directory`` refuse new files, as a read-only mount or ``chmod a-w`` would.

    The tests run as root, whom ``chmod`` does not stop, so the refusal is simulated at the
    one call that creates files.
    """
    real_open: Callable[..., int] = os.open

    def guarded(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and Path(path).parent == directory:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_a_directory_that_refuses_new_files(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    with monkeypatch.context() as patch:
        refuse_creating_files_in(locked, code, patch)
        result = enroll(server, locked / "kim.json")
    says = f"cannot write a key file in {locked}: {os.strerror(code).lower()}"
    assert_refused_before_the_link_is_spent(result, server, says)
    assert list(locked.iterdir()) == []
    assert_link_still_works(server, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a 0500 directory anyway")
def test_a_read_only_directory(server: FakeServer, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        result = enroll(server, locked / "kim.json")
    finally:
        locked.chmod(0o700)
    assert_refused_before_the_link_is_spent(result, server, "permission denied")
    assert_link_still_works(server, tmp_path)


def test_a_key_that_cannot_be_put_in_place_is_kept_where_it_was_written(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename fails after the server accepted: the key is on disk already, so it stays
    there and the error says where (it used to be deleted, the only copy of a good key)."""
    path = tmp_path / "cfg" / "device.json"

    def refused(*_args: object) -> None:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refused)
        result = enroll(server, path)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    said = " ".join(result.output.split())
    (device_id,) = server.devices
    assert f"this device is {device_id}" in said
    assert "revoke-device" not in said
    (kept,) = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert f"the new key is saved in {kept}" in said
    assert load_key_file(kept).record.device_id == device_id
    assert not path.exists()


def test_a_save_failing_after_the_server_accepted_names_the_device(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up between the check and the save: nothing can bring the link back, so
    the error says which device to revoke, on one line, without a traceback."""
    path = tmp_path / "cfg" / "device.json"
    real_pwrite, calls = os.pwrite, []

    def disk_full_the_second_time(fd: int, data: bytes, offset: int) -> int:
        calls.append(fd)
        if len(calls) > 1:  # the first claims the room, before the server is asked
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", disk_full_the_second_time)
        result = enroll(server, path)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    (device_id,) = server.devices
    assert f"lychgate user revoke-device usr_ada {device_id}" in result.output
    assert "no space left on device" in result.output
    assert not path.exists()
    assert no_temporary_files_in(path.parent)


def test_a_failed_enrollment_leaves_no_temporary_file(server: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "device.json"
    server.codes.clear()  # the link is refused
    result = enroll(server, path)
    assert result.exit_code == 1
    assert "unknown, used, cancelled or expired" in result.output
    assert not path.exists()
    assert no_temporary_files_in(path.parent)


def test_force_replaces_a_key_and_leaves_no_temporary_file(
    server: FakeServer, key_path: Path
) -> None:
    before = load_key_file(key_path).record.device_id
    result = enroll(server, key_path, "--force")
    assert result.exit_code == 0, result.output
    assert load_key_file(key_path).record.device_id != before
    assert no_temporary_files_in(key_path.parent)
