"""The device key file: private from its first byte, refused when loose, never shown."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from device.conftest import ENROLLED_AT, enroll_directly
from device.fakeserver import FakeServer
from lychgate.device.keyfile import (
    KeyFile,
    default_key_path,
    load_key_file,
    save_key_file,
)
from lychgate.devicesig import b64url
from lychgate.errors import ConfigError, Conflict, NotFound


def private_b64(key_file: KeyFile) -> str:
    raw = key_file.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return b64url(raw)


@pytest.fixture
def no_umask() -> Iterator[None]:
    """The most permissive umask: the file must still come out 0600."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("no_umask")
def test_saved_private_and_round_trips(tmp_path: Path, key_file: KeyFile) -> None:
    path = tmp_path / "new-dir" / "device.json"
    save_key_file(path, key_file, overwrite=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load_key_file(path)
    assert loaded.record == key_file.record
    assert loaded.record.enrolled_at == ENROLLED_AT
    assert loaded.public_key_raw() == key_file.public_key_raw()
    assert private_b64(loaded) == private_b64(key_file)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o602, 0o700, 0o601])
def test_refuses_a_key_others_may_touch(key_path: Path, mode: int) -> None:
    key_path.chmod(mode)
    if not mode & 0o077:
        load_key_file(key_path)  # 0700: odd, but private
        return
    with pytest.raises(ConfigError) as caught:
        load_key_file(key_path)
    assert f"chmod 600 {key_path}" in str(caught.value)
    assert caught.value.field == "key"


def test_0400_is_fine(key_path: Path) -> None:
    key_path.chmod(0o400)
    load_key_file(key_path)


def test_missing_key_file_says_enroll(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="enroll"):
        load_key_file(tmp_path / "nope.json")


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_key_file(d)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "something-else/9"}',
        b'{"format": "lychgate-device-key/1"}',
        b"\xff\xfe",
    ],
)
def test_garbage_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "device.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_key_file(path)
    assert "not a valid device key file" in str(caught.value)


@pytest.mark.parametrize("broken", ["short", "naive-time", "wrong-type"])
def test_damaged_members_are_refused_and_the_key_never_echoed(
    key_path: Path, key_file: KeyFile, broken: str
) -> None:
    doc = json.loads(key_path.read_text())
    if broken == "short":
        doc["private_key"] = doc["private_key"][:20]
    elif broken == "naive-time":
        doc["enrolled_at"] = "2030-01-01T00:00:00"
    else:
        doc["user"]["id"] = 7
    key_path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        load_key_file(key_path)
    assert doc["private_key"] not in str(caught.value)


def test_repr_never_shows_the_key(key_file: KeyFile) -> None:
    secret = private_b64(key_file)
    assert secret not in repr(key_file)
    assert secret not in str(key_file)
    assert "private_key" not in repr(key_file)


def test_never_overwrites_without_being_told(key_path: Path, server: FakeServer) -> None:
    before = key_path.read_bytes()
    with pytest.raises(Conflict, match="--force"):
        save_key_file(key_path, enroll_directly(server, device_id="dev_2"), overwrite=False)
    assert key_path.read_bytes() == before


def test_replacing_is_atomic(key_path: Path, server: FakeServer) -> None:
    """A replacement is a rename: a reader holding the old file sees all of it, and no
    temporary file is left behind."""
    old_inode = key_path.stat().st_ino
    old_bytes = key_path.read_bytes()
    replacement = enroll_directly(server, device_id="dev_2")
    with key_path.open("rb") as reader:
        save_key_file(key_path, replacement, overwrite=True)
        assert reader.read() == old_bytes
    assert key_path.stat().st_ino != old_inode
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_key_file(key_path).record.device_id == "dev_2"
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["device.json"]


def test_default_path_order(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert default_key_path({"HOME": home}) == tmp_path / ".config/lychgate/device.json"
    assert default_key_path({"HOME": home, "XDG_CONFIG_HOME": "/etc/x"}) == Path(
        "/etc/x/lychgate/device.json"
    )
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    assert default_key_path({"HOME": home, "XDG_CONFIG_HOME": "rel"}) == (
        tmp_path / ".config/lychgate/device.json"
    )
    env = {"HOME": home, "XDG_CONFIG_HOME": "/etc/x", "LYCHGATE_DEVICE_KEY": "/k/d.json"}
    assert default_key_path(env) == Path("/k/d.json")
