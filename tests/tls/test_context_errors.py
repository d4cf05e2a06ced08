"""What an operator is told about TLS files the gateway cannot use.

OpenSSL's own words were "[SSL] PEM lib (_ssl.c:3905)" for a DER file or swapped paths, and a
key encrypted with a passphrase made it prompt on the terminal, twice, and wait.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lychgate.errors import ConfigError
from lychgate.tls.context import server_ssl_context
from lychgate.tls.files import TlsPaths, ensure_tls_material


@pytest.fixture
def paths(tmp_path: Path) -> TlsPaths:
    return ensure_tls_material(tmp_path / "tls", ["example.com"], now=datetime.now(UTC))


def _refusal(cert: Path, key: Path) -> str:
    with pytest.raises(ConfigError) as info:
        server_ssl_context(cert, key)
    return str(info.value)


def _key_as(
    paths: TlsPaths,
    to: Path,
    encoding: serialization.Encoding,
    encryption: serialization.KeySerializationEncryption,
) -> Path:
    """The server's key written again to ``to``, in ``encoding``, with ``encryption``."""
    key = serialization.load_pem_private_key(paths.server_key.read_bytes(), None)
    to.write_bytes(key.private_bytes(encoding, serialization.PrivateFormat.PKCS8, encryption))
    return to


def test_a_key_with_a_passphrase_is_named_and_never_prompted_for(
    paths: TlsPaths, tmp_path: Path
) -> None:
    secret = serialization.BestAvailableEncryption(b"secret")
    encrypted = _key_as(paths, tmp_path / "encrypted.key", serialization.Encoding.PEM, secret)
    said = _refusal(paths.server_cert, encrypted)
    assert "is encrypted with a passphrase" in said
    assert f"openssl pkey -in {encrypted}" in said


def test_der_files_are_named_with_the_conversion(paths: TlsPaths, tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    der_cert = tmp_path / "server.der"
    der_cert.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    said = _refusal(der_cert, paths.server_key)
    assert f"{der_cert} holds no PEM certificate" in said
    assert "openssl x509 -inform der" in said
    plain = serialization.NoEncryption()
    der_key = _key_as(paths, tmp_path / "server.key.der", serialization.Encoding.DER, plain)
    said = _refusal(paths.server_cert, der_key)
    assert f"{der_key} holds no PEM private key" in said
    assert "openssl pkey -inform der" in said


def test_swapped_paths_are_called_swapped(paths: TlsPaths) -> None:
    assert "look swapped" in _refusal(paths.server_key, paths.server_cert)


def test_a_key_that_does_not_match_keeps_openssls_reason(paths: TlsPaths) -> None:
    said = _refusal(paths.server_cert, paths.ca_key)
    assert "key values mismatch" in said
