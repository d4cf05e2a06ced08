"""TLS material on disk: idempotent, never destroys a key, re-issues only when needed.

These functions do blocking file I/O by design (they run from the CLI), so the tests are sync.
"""

from __future__ import annotations

import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lychgate.errors import ConfigError, UsageError
from lychgate.files import write_atomic
from lychgate.tls.ca import san_names
from lychgate.tls.files import (
    TlsPaths,
    ca_certificate_pem,
    ensure_tls_material,
    load_ca,
    renew_server_cert,
    rotate_ca,
)

from .pki import NOW, verify_with

HOSTS = ["example.com", "*.example.com"]
FILES = ("ca.pem", "ca.key", "server.pem", "server.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(tls_dir: Path) -> dict[str, bytes]:
    return {name: (tls_dir / name).read_bytes() for name in FILES}


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tls"


@pytest.fixture
def made(tls_dir: Path) -> TlsPaths:
    """A directory after one successful run."""
    return ensure_tls_material(tls_dir, HOSTS, now=NOW)


def test_first_run_creates_everything(tls_dir: Path) -> None:
    paths = ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert paths.ca_created
    assert paths.server_cert_issued
    assert paths.ca_cert == tls_dir / "ca.pem"
    assert sorted(p.name for p in tls_dir.iterdir()) == sorted([*FILES, ".lock"])
    assert _mode(tls_dir) == 0o700
    assert _mode(paths.ca_key) == 0o600
    assert _mode(paths.server_key) == 0o600
    assert b"PRIVATE KEY" in paths.ca_key.read_bytes()

    ca = load_ca(tls_dir)
    leaf = _cert(paths.server_cert)
    assert san_names(leaf) == HOSTS
    verify_with(ca.certificate, leaf, "app.example.com")
    # The CA is constrained to what it was made for.
    assert ca.certificate.extensions.get_extension_for_class(x509.NameConstraints)


def test_keys_are_private_even_with_a_permissive_umask(tls_dir: Path) -> None:
    old = os.umask(0)
    try:
        paths = ensure_tls_material(tls_dir, HOSTS, now=NOW)
    finally:
        os.umask(old)
    assert _mode(paths.ca_key) == 0o600
    assert _mode(paths.server_key) == 0o600
    assert _mode(paths.ca_cert) == 0o644


def test_second_run_changes_nothing(tls_dir: Path, made: TlsPaths) -> None:
    before = _snapshot(tls_dir)
    again = ensure_tls_material(
        tls_dir, ["*.Example.COM", "example.com."], now=NOW + timedelta(days=1)
    )
    assert not again.ca_created
    assert not again.server_cert_issued
    assert _snapshot(tls_dir) == before


def test_reissues_when_expiring_and_keeps_the_keys(tls_dir: Path, made: TlsPaths) -> None:
    before = _snapshot(tls_dir)
    old_leaf = _cert(made.server_cert)

    # 31 days before expiry: still fine.
    quiet = old_leaf.not_valid_after_utc - timedelta(days=31)
    assert not ensure_tls_material(tls_dir, HOSTS, now=quiet).server_cert_issued

    later = old_leaf.not_valid_after_utc - timedelta(days=29)
    paths = ensure_tls_material(tls_dir, HOSTS, now=later)
    assert paths.server_cert_issued
    assert not paths.ca_created
    after = _snapshot(tls_dir)
    for name in ("ca.pem", "ca.key", "server.key"):
        assert after[name] == before[name], name
    new_leaf = _cert(made.server_cert)
    assert new_leaf.not_valid_after_utc > old_leaf.not_valid_after_utc
    assert new_leaf.public_key() == old_leaf.public_key()
    verify_with(_cert(made.ca_cert), new_leaf, "example.com", later + timedelta(days=300))


def test_a_running_gateway_renews_when_due_and_never_makes_a_ca(
    tls_dir: Path, made: TlsPaths
) -> None:
    before = _snapshot(tls_dir)
    expiry = _cert(made.server_cert).not_valid_after_utc
    assert not renew_server_cert(tls_dir, HOSTS, expiry - timedelta(days=31))
    assert _snapshot(tls_dir) == before
    assert renew_server_cert(tls_dir, HOSTS, expiry - timedelta(days=29))
    assert not renew_server_cert(tls_dir, HOSTS, expiry - timedelta(days=29))  # done once
    after = _snapshot(tls_dir)
    assert [n for n in FILES if after[n] != before[n]] == ["server.pem"]
    for name in ("ca.pem", "ca.key"):
        (tls_dir / name).unlink()
    with pytest.raises(ConfigError, match="internal CA is not in"):
        renew_server_cert(tls_dir, HOSTS, expiry + timedelta(days=300))
    assert not (tls_dir / "ca.pem").exists()  # no CA that no device trusts
    assert not (tls_dir / "ca.key").exists()


def test_rotation_makes_a_new_ca_for_new_names_and_keeps_the_old_one(
    tls_dir: Path, made: TlsPaths
) -> None:
    before = _snapshot(tls_dir)
    moved = ["other.example", "*.other.example"]  # the domain changed: the old CA may not
    with pytest.raises(ConfigError, match="may not certify"):
        ensure_tls_material(tls_dir, moved, now=NOW)
    kept = rotate_ca(tls_dir, moved, now=NOW)
    assert kept.read_bytes() == before["ca.pem"]
    kept_key = kept.with_suffix(".key")
    assert kept_key.read_bytes() == before["ca.key"]
    assert _mode(kept_key) == 0o600
    after = _snapshot(tls_dir)
    assert after["ca.pem"] != before["ca.pem"]
    assert after["ca.key"] != before["ca.key"]
    assert after["server.key"] == before["server.key"]  # only certificates change
    verify_with(_cert(made.ca_cert), _cert(made.server_cert), "other.example")
    assert not ensure_tls_material(tls_dir, moved, now=NOW).server_cert_issued


def test_rotation_refuses_without_a_sound_ca(tls_dir: Path, made: TlsPaths) -> None:
    other = tls_dir.parent / "other"
    with pytest.raises(ConfigError, match="no internal CA"):
        rotate_ca(other, HOSTS, now=NOW)
    assert not other.exists()
    stranger = ensure_tls_material(other, HOSTS, now=NOW)
    shutil.copy(stranger.ca_key, made.ca_key)  # a key that does not match ca.pem
    before = _snapshot(tls_dir)
    with pytest.raises(ConfigError, match="does not match"):
        rotate_ca(tls_dir, HOSTS, now=NOW)
    assert _snapshot(tls_dir) == before
    assert sorted(p.name for p in tls_dir.glob("ca-retired-*")) == []


def test_reissues_when_a_name_is_missing(tls_dir: Path, made: TlsPaths) -> None:
    paths = ensure_tls_material(tls_dir, ["example.com", "portal.example.com"], now=NOW)
    assert paths.server_cert_issued
    assert san_names(_cert(made.server_cert)) == ["example.com", "portal.example.com"]


def test_a_name_outside_the_ca_is_a_config_error(tls_dir: Path, made: TlsPaths) -> None:
    before = _snapshot(tls_dir)
    with pytest.raises(ConfigError, match=r"evil\.com"):
        ensure_tls_material(tls_dir, ["example.com", "evil.com"], now=NOW)
    assert _snapshot(tls_dir) == before


@pytest.mark.parametrize("damage", ["delete", "garbage", "other-ca", "other-key"])
def test_reissues_a_bad_server_cert(
    tls_dir: Path, made: TlsPaths, tmp_path: Path, damage: str
) -> None:
    before = _snapshot(tls_dir)
    if damage == "delete":
        made.server_cert.unlink()
    elif damage == "garbage":
        made.server_cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n")
    elif damage == "other-ca":
        other = ensure_tls_material(tmp_path / "other", HOSTS, now=NOW)
        shutil.copyfile(other.server_cert, made.server_cert)
    else:  # a certificate from this CA, but for another key
        made.server_key.unlink()
        ensure_tls_material(tls_dir, HOSTS, now=NOW)
        made.server_key.write_bytes(before["server.key"])
    paths = ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert paths.server_cert_issued
    assert not paths.ca_created
    assert made.ca_key.read_bytes() == before["ca.key"]
    assert made.server_key.read_bytes() == before["server.key"]
    leaf = _cert(made.server_cert)
    verify_with(_cert(made.ca_cert), leaf, "example.com")
    assert leaf.public_key() == _server_public_key(made)


def test_missing_server_key_gets_a_new_key(tls_dir: Path, made: TlsPaths) -> None:
    before = _snapshot(tls_dir)
    made.server_key.unlink()
    paths = ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert paths.server_cert_issued
    assert _mode(made.server_key) == 0o600
    assert made.server_key.read_bytes() != before["server.key"]
    assert _cert(made.server_cert).public_key() == _server_public_key(made)
    assert made.ca_cert.read_bytes() == before["ca.pem"]


def test_a_ca_certificate_without_its_key_is_not_replaced(tls_dir: Path, made: TlsPaths) -> None:
    ca_pem = made.ca_cert.read_bytes()
    made.ca_key.unlink()
    with pytest.raises(ConfigError, match=r"ca\.key"):
        ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert made.ca_cert.read_bytes() == ca_pem
    assert not made.ca_key.exists()


def test_a_ca_key_without_its_certificate_is_finished(tls_dir: Path, made: TlsPaths) -> None:
    """An interrupted first run leaves ca.key alone (it is written first): reuse that key."""
    ca_key = made.ca_key.read_bytes()
    for path in (made.ca_cert, made.server_cert, made.server_key):
        path.unlink()
    paths = ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert paths.ca_created
    assert paths.server_cert_issued
    assert made.ca_key.read_bytes() == ca_key
    ca = load_ca(tls_dir)
    verify_with(ca.certificate, _cert(made.server_cert), "example.com")


@pytest.mark.parametrize("damage", ["garbage", "other-ca-key", "rsa"])
def test_a_bad_ca_key_is_an_error_and_left_alone(
    tls_dir: Path, made: TlsPaths, tmp_path: Path, damage: str
) -> None:
    if damage == "garbage":
        made.ca_key.write_bytes(b"not a key")
    elif damage == "other-ca-key":
        other = ensure_tls_material(tmp_path / "other", HOSTS, now=NOW)
        shutil.copyfile(other.ca_key, made.ca_key)
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        made.ca_key.write_bytes(
            rsa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    before = _snapshot(tls_dir)
    with pytest.raises(ConfigError) as info:
        ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert info.value.field == "tls_dir"
    assert _snapshot(tls_dir) == before


def test_an_expiring_ca_is_an_error(tls_dir: Path, made: TlsPaths) -> None:
    ca = _cert(made.ca_cert)
    with pytest.raises(ConfigError, match="expires"):
        ensure_tls_material(tls_dir, HOSTS, now=ca.not_valid_after_utc - timedelta(days=29))


def test_a_non_ca_certificate_is_refused(tls_dir: Path, made: TlsPaths) -> None:
    made.server_cert.replace(made.ca_cert)
    made.server_key.replace(made.ca_key)
    with pytest.raises(ConfigError, match="not a CA"):
        ensure_tls_material(tls_dir, HOSTS, now=NOW)


def test_loose_key_permissions_are_tightened(tls_dir: Path, made: TlsPaths) -> None:
    made.ca_key.chmod(0o644)
    made.server_key.chmod(0o640)
    ensure_tls_material(tls_dir, HOSTS, now=NOW)
    assert _mode(made.ca_key) == 0o600
    assert _mode(made.server_key) == 0o600


def test_concurrent_first_runs_make_one_ca(tls_dir: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ensure_tls_material(tls_dir, HOSTS, now=NOW), range(4)))
    assert sum(r.ca_created for r in results) == 1
    ca = load_ca(tls_dir)  # the certificate and key on disk match
    verify_with(ca.certificate, _cert(tls_dir / "server.pem"), "example.com")


def test_bad_arguments(tls_dir: Path) -> None:
    with pytest.raises(UsageError):
        ensure_tls_material(tls_dir, HOSTS, now=NOW.replace(tzinfo=None))
    with pytest.raises(UsageError):
        ensure_tls_material(tls_dir, [], now=NOW)
    with pytest.raises(ConfigError):
        ensure_tls_material(tls_dir, ["exa mple.com"], now=NOW)
    assert not tls_dir.exists()  # nothing was created for a bad call


def test_write_atomic_overwrites_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_atomic(target, b"first", mode=0o600, overwrite=False)
    with pytest.raises(UsageError):
        write_atomic(target, b"second", mode=0o600, overwrite=False)
    write_atomic(target, b"third", mode=0o600, overwrite=True)
    assert target.read_bytes() == b"third"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary files left


class TestCaExport:
    def test_exports_the_ca_certificate(self, tls_dir: Path, made: TlsPaths) -> None:
        pem = ca_certificate_pem(tls_dir)
        assert pem.startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE" not in pem
        assert x509.load_pem_x509_certificate(pem.encode()) == _cert(made.ca_cert)

    def test_no_ca_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="lychgate init") as info:
            ca_certificate_pem(tmp_path)
        assert info.value.field == "tls_dir"

    def test_garbage_is_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_text("hello")
        with pytest.raises(ConfigError, match="not a PEM certificate"):
            ca_certificate_pem(tmp_path)


def _server_public_key(paths: TlsPaths) -> object:
    key = serialization.load_pem_private_key(paths.server_key.read_bytes(), password=None)
    return key.public_key()
