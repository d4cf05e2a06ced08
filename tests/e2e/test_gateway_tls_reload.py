"""``lychgate gateway`` serves a renewed certificate after SIGHUP, without a restart, and a
SIGHUP while it stops does not end its drain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme

from e2e.deployment import add_app, free_port, lychgate, serve
from gateway.upstreams import Reply, Seen, http_upstream

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


@contextlib.asynccontextmanager
async def _authz(data_dir: Path) -> AsyncIterator[None]:
    """``lychgate authz`` on its default unix socket in ``data_dir``."""
    out = await asyncio.to_thread((data_dir / "authz.log").open, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYCHGATE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lychgate",
        "authz",
        "--dir",
        str(data_dir),
        stdout=out,
        stderr=out,
        env=env,
    )
    try:
        yield
    finally:
        process.terminate()
        async with asyncio.timeout(15):
            await process.wait()
        out.close()


async def _presented(port: int) -> bytes:
    """The certificate the gateway presents, DER-encoded (not verified: only compared)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    assert isinstance(der, bytes)
    return der


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(
        pem.decode().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    )


def _renew(tls_dir: Path) -> bytes:
    """Put a new pair where the internal one is, as a renewal would; its DER."""
    cert = trustme.CA().issue_cert("localhost")
    for name, pem in (
        ("server.key", cert.private_key_pem.bytes()),
        ("server.pem", cert.cert_chain_pems[0].bytes()),
    ):
        tmp = tls_dir / (name + ".new")
        tmp.write_bytes(pem)
        os.replace(tmp, tls_dir / name)
    return _der(cert.cert_chain_pems[0].bytes())


async def test_sighup_makes_the_gateway_serve_a_renewed_certificate(data_dir: Path) -> None:
    port = free_port()
    d = str(data_dir)
    await asyncio.to_thread(
        lychgate, "init", "--dir", d, "--public-url", f"https://localhost:{port}"
    )
    tls_dir = data_dir / "tls"
    first = _der(await asyncio.to_thread((tls_dir / "server.pem").read_bytes))
    async with (
        _authz(data_dir),
        serve(
            data_dir, port, command="gateway", health_url=f"https://localhost:{port}", verify=False
        ) as gateway,
    ):
        assert await _presented(port) == first
        renewed = await asyncio.to_thread(_renew, tls_dir)
        gateway.process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):  # far less than the minute between regular checks
            while await _presented(port) != renewed:
                await asyncio.sleep(0.05)
        assert gateway.process.returncode is None
    log = await asyncio.to_thread(gateway.log.read_text)
    assert "TLS certificates reloaded" in log


async def test_a_sighup_while_the_gateway_drains_does_not_kill_it(data_dir: Path) -> None:
    # `systemctl reload` or certbot's `pkill -HUP` may land in the drain: the handler was
    # removed before it, so the default action ended the process at once, cutting the
    # requests it was finishing. Now the drain goes on, and the stop is clean.
    answering = asyncio.Event()

    async def slow(seen: Seen, reply: Reply) -> None:
        answering.set()
        await asyncio.sleep(1.5)
        await reply.send(200, b"finished")

    port = free_port()
    d = str(data_dir)
    async with http_upstream(slow) as up:

        def deploy() -> str:
            lychgate("init", "--dir", d, "--public-url", f"http://127.0.0.1:{port}")
            add_app(d, "slow", "Slow", up.url)
            lychgate("user", "add", "Admin", "--email", "admin@example.test", "--admin", "--dir", d)
            lychgate("user", "add", "Ada", "--email", "ada@example.test", "--dir", d)
            minted = lychgate("token", "mint", "--dir", d, "--app", "slow", "--user", "Ada")
            return minted.split("\n")[0]

        cookie = await asyncio.to_thread(deploy)
        async with _authz(data_dir), serve(data_dir, port, command="gateway") as gateway:
            async with httpx.AsyncClient() as client:
                asked = asyncio.create_task(
                    client.get(f"{gateway.url}/x", headers={"cookie": cookie}, timeout=20)
                )
                async with asyncio.timeout(10):
                    await answering.wait()
                gateway.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)  # into the drain
                gateway.process.send_signal(signal.SIGHUP)
                answer = await asyncio.wait_for(asked, 10)
            assert (answer.status_code, answer.text) == (200, "finished")
            async with asyncio.timeout(15):
                assert await gateway.process.wait() == 0
    log = await asyncio.to_thread(gateway.log.read_text)
    assert "SIGHUP while stopping: no certificate check" in log
