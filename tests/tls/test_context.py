"""Real TLS handshakes on loopback: our server context, clients that trust only our CA.

The certificate files and SSL contexts are made in sync fixtures, before the event loop runs:
that work is blocking by design (the CLI does it at start-up).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lychgate.errors import ConfigError, UsageError
from lychgate.files import PRIVATE_MODE, PUBLIC_MODE, write_atomic
from lychgate.tls.context import client_ssl_context, server_ssl_context
from lychgate.tls.files import TlsPaths, ensure_tls_material, load_ca

from .pki import forge_leaf

pytestmark = pytest.mark.loopback

HOSTS = ["example.com", "*.example.com", "127.0.0.1"]


@dataclass(frozen=True, slots=True)
class Material:
    paths: TlsPaths
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture
def material(tmp_path: Path) -> Material:
    # Real time: OpenSSL checks validity against the system clock.
    paths = ensure_tls_material(tmp_path / "tls", HOSTS, now=datetime.now(UTC))
    return Material(
        paths,
        server_ssl_context(paths.server_cert, paths.server_key),
        client_ssl_context(paths.ca_cert),
    )


@pytest.fixture
async def port(material: Material) -> AsyncIterator[int]:
    """A TLS server on an ephemeral loopback port that greets and hangs up."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        try:
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass

    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=material.server)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _handshake(port: int, client: ssl.SSLContext, server_name: str) -> ssl.SSLObject:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname=server_name
    )
    try:
        assert await reader.read() == b"hello"
        ssl_object = writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        return ssl_object
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("server_name", ["example.com", "app.example.com", "127.0.0.1"])
async def test_handshake_succeeds_for_covered_names(
    material: Material, port: int, server_name: str
) -> None:
    tls = await _handshake(port, material.client, server_name)
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert tls.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize("server_name", ["evil.com", "a.b.example.com", "localhost"])
async def test_handshake_fails_for_uncovered_names(
    material: Material, port: int, server_name: str
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        await _handshake(port, material.client, server_name)


async def test_certificates_pass_openssl_strict_checks(material: Material, port: int) -> None:
    strict = client_ssl_context(material.paths.ca_cert)
    strict.verify_flags |= ssl.VERIFY_X509_STRICT
    await _handshake(port, strict, "app.example.com")


async def test_system_roots_do_not_trust_our_ca(port: int) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(port, client_ssl_context(), "example.com")


async def test_verify_false_connects_without_checks(port: int) -> None:
    tls = await _handshake(port, client_ssl_context(verify=False), "evil.com")
    assert tls.version() in ("TLSv1.2", "TLSv1.3")


async def test_tls_1_1_is_refused(port: int) -> None:
    def old_client(maximum: ssl.TLSVersion) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # Let this client really offer TLS 1.1, so any refusal comes from our server.
        context.set_ciphers("ALL:@SECLEVEL=0")
        with pytest.warns(DeprecationWarning, match="TLSv1_1 is deprecated"):
            context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = maximum
        return context

    with pytest.warns(DeprecationWarning, match="TLSv1_1 is deprecated"):
        tls11 = old_client(ssl.TLSVersion.TLSv1_1)
    # OpenSSL answers with a protocol_version alert; asyncio may see only the reset after it.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await _handshake(port, tls11, "example.com")
    # Control: the same permissive client gets TLS 1.2 once it may ask for it.
    tls = await _handshake(port, old_client(ssl.TLSVersion.TLSv1_2), "example.com")
    assert tls.version() == "TLSv1.2"


async def test_a_tls_1_2_session_gets_no_ticket(port: int) -> None:
    # A ticket is the session's keys sealed under one key for the process's life: whoever
    # took that key could decrypt every session resumed with one.
    client = client_ssl_context(verify=False)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    tls = await _handshake(port, client, "example.com")
    assert tls.version() == "TLSv1.2"
    assert tls.session is not None
    assert not tls.session.has_ticket


@pytest.fixture
def forged_server(material: Material, tmp_path: Path) -> ssl.SSLContext:
    """A server context for evil.com, signed by our (name-constrained) CA's own key."""
    ca = load_ca(material.paths.ca_cert.parent)
    forged = forge_leaf(ca, ["evil.com"], datetime.now(UTC))
    cert, key = tmp_path / "evil.pem", tmp_path / "evil.key"
    write_atomic(cert, forged.certificate_pem(), mode=PUBLIC_MODE, overwrite=False)
    write_atomic(
        key, forged.private_key_pem().reveal().encode(), mode=PRIVATE_MODE, overwrite=False
    )
    return server_ssl_context(cert, key)


async def test_openssl_enforces_the_name_constraints(
    material: Material, forged_server: ssl.SSLContext
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=forged_server)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError, match="subtree violation"):
            await _handshake(port, material.client, "evil.com")


def test_server_context_defaults(material: Material) -> None:
    context = material.server
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_NO_TICKET
    ciphers = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert ciphers
    assert all(c["kea"] == "kx-ecdhe" and c["aead"] for c in ciphers)


def test_client_context_defaults(material: Material) -> None:
    context = material.client
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_bad_files_are_config_errors(material: Material, tmp_path: Path) -> None:
    paths = material.paths
    with pytest.raises(ConfigError):
        server_ssl_context(paths.server_cert, paths.ca_key)  # key does not match
    with pytest.raises(ConfigError):
        server_ssl_context(tmp_path / "missing.pem", paths.server_key)
    with pytest.raises(ConfigError):
        client_ssl_context(tmp_path / "missing.pem")


def test_a_ca_file_with_verify_false_is_a_usage_error(material: Material) -> None:
    with pytest.raises(UsageError):
        client_ssl_context(material.paths.ca_cert, verify=False)
