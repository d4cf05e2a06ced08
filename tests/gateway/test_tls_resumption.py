"""TLS session resumption and the certificate chosen by name (lychgate.gateway.http.tls).

A resumed TLS 1.3 session presents no certificate: the one its first handshake showed stands.
Every session is made with the listener's context, whatever certificate the SNI callback chose,
so a session made for one name was resumed under another name whose certificate it never saw,
and the request was served (RFC 6066 section 3: a server must not resume a session for another
name). A listener with several certificates therefore issues no TLS 1.3 tickets; one with a
single certificate keeps resumption, which that certificate's names bound. (``lychgate serve``
and ``lychgate gateway`` serve one certificate; several are the engine's.)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
import trustme

from gateway.client import get
from gateway.conftest import Start
from lychgate.gateway.http.tls import CertPair, server_context
from lychgate.gateway.types import Respond

pytestmark = pytest.mark.loopback


def _pair(ca: trustme.CA, tmp_path: Path, *names: str) -> CertPair:
    cert = ca.issue_cert(*names)
    cert_file, key_file = tmp_path / f"{names[0]}.crt", tmp_path / f"{names[0]}.key"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    return CertPair(cert_file, key_file)


def _several(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(
        _pair(ca, tmp_path, "portal.example"),
        {"metrics.example": _pair(ca, tmp_path, "metrics.example")},
    )


def _one(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(_pair(ca, tmp_path, "portal.example", "*.apps.example"))


def _client(ca: trustme.CA, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers its session under any name (a browser would not; anyone may)."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.check_hostname = False
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _fetch(
    port: int, ctx: ssl.SSLContext, name: str, session: ssl.SSLSession | None = None
) -> tuple[bool, ssl.SSLSession | None, bytes]:
    """One request over TLS as ``name``, offering ``session``: whether it was resumed,
    the session to offer next, and the answer's first bytes."""
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname=name, session=session) as tls,
    ):
        tls.sendall(get("/x", host=name, extra="Connection: close\r\n"))
        answer = b""
        while chunk := tls.recv(65536):  # to the end: the ticket may come after it
            answer += chunk
        return bool(tls.session_reused), tls.session, answer


def _answer(head: object) -> Respond:
    return Respond(200, (), b"ok")


async def test_a_session_is_not_resumed_under_another_certificates_name(
    gateway: Start, ca: trustme.CA, tmp_path: Path
) -> None:
    version = ssl.TLSVersion.TLSv1_3  # TLS 1.2's session cache has no switch in Python
    gw = await gateway(_answer, ssl=await asyncio.to_thread(_several, ca, tmp_path))
    client = await asyncio.to_thread(_client, ca, version)
    _, session, answer = await asyncio.to_thread(_fetch, gw.port, client, "metrics.example")
    assert answer.startswith(b"HTTP/1.1 200 ")
    reused, _, answer = await asyncio.to_thread(_fetch, gw.port, client, "portal.example", session)
    # A full handshake, so the client saw (and checked) portal.example's own certificate.
    assert not reused
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_one_certificate_keeps_resumption(
    gateway: Start, ca: trustme.CA, tmp_path: Path, version: ssl.TLSVersion
) -> None:
    gw = await gateway(_answer, ssl=await asyncio.to_thread(_one, ca, tmp_path))
    client = await asyncio.to_thread(_client, ca, version)
    _, session, _ = await asyncio.to_thread(_fetch, gw.port, client, "wiki.apps.example")
    reused, _, answer = await asyncio.to_thread(_fetch, gw.port, client, "portal.example", session)
    assert reused  # the certificate it showed names portal.example too
    assert answer.startswith(b"HTTP/1.1 200 ")
