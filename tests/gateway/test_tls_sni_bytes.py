"""A server name (SNI) that is not ASCII fails the handshake without a traceback.

CPython decodes the name before the SNI callback runs and reports a failure as "unraisable":
a traceback on stderr for every such handshake, from anyone, about a kilobyte each. The
gateway drops those reports and counts them in one log line a minute.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

from gateway.conftest import Start, forward_to
from lychgate.gateway.http.tls import CertPair, quiet_undecodable_server_names, server_context

pytestmark = [
    pytest.mark.loopback,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


async def _hello_with_name(port: int, name: str) -> None:
    """A TLS handshake that sends ``name`` as its server name (openssl s_client)."""
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(10):
        await proc.wait()


def _listener(tmp_path: Path) -> ssl.SSLContext:
    cert = trustme.CA().issue_cert("gw.example")
    pair = CertPair(tmp_path / "gw.crt", tmp_path / "gw.key")
    cert.private_key_pem.write_to_path(str(pair.key_file))
    pair.cert_file.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    return server_context(pair, {})


async def test_a_server_name_that_is_not_ascii_writes_no_traceback(
    gateway: Start,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after
    quiet_undecodable_server_names()
    quiet_undecodable_server_names()  # once is enough: a second call adds no layer
    context = await asyncio.to_thread(_listener, tmp_path)
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=context)
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.tls"):
        for _ in range(3):
            await _hello_with_name(gw.port, "\u00e4.example")
    assert "Exception ignored" not in capfd.readouterr().err
    assert caplog.text.count("server name (SNI) that is not ASCII") == 1  # once a minute


def test_other_unraisable_reports_still_reach_the_hook_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    quiet_undecodable_server_names()
    report = SimpleNamespace(exc_value=ValueError("x"), object=b"x")
    sys.unraisablehook(report)
    assert seen == [report]
