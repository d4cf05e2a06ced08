"""The demo process's body: both apps on unix sockets, prepared before the loop, stopped cleanly."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import stat
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed

from demo.conftest import RunningDemo
from demo.fakes import assertion
from lychgate.demo.runner import prepare_demo
from lychgate.deployment.init import prepare_files
from lychgate.errors import ConfigError
from lychgate.tokens import Keyring
from lychgate.unix_sockets import MAX_SOCKET_PATH_BYTES

pytestmark = pytest.mark.loopback
NOW = datetime(2030, 1, 1, tzinfo=UTC)


async def test_whoami_answers_on_its_socket(
    whoami_client: httpx.AsyncClient, keyring: Keyring
) -> None:
    good = await whoami_client.get(
        "/?format=json", headers={"x-lychgate-assertion": assertion(keyring)}
    )
    assert good.status_code == 200
    assert good.json()["claims"]["aud"] == "whoami"
    chat_token = assertion(keyring, app="chat")
    bad = await whoami_client.get("/?format=json", headers={"x-lychgate-assertion": chat_token})
    assert bad.status_code == 401
    assert bad.json()["error"] == "assertion invalid: wrong_audience"


async def test_the_apps_share_one_jwks_cache(
    whoami_client: httpx.AsyncClient, demo: RunningDemo, keyring: Keyring
) -> None:
    for _ in range(3):
        r = await whoami_client.get("/", headers={"x-lychgate-assertion": assertion(keyring)})
        assert r.status_code == 200
    token = assertion(keyring, app="chat")
    async with unix_connect(
        str(demo.chat), "ws://chat.test/ws", additional_headers={"x-lychgate-assertion": token}
    ) as ws:
        await ws.recv()
    assert demo.jwks.fetches == 1


async def drain(ws: ClientConnection) -> None:
    """Receive until the connection closes (raises ConnectionClosed)."""
    async with asyncio.timeout(5):
        while True:
            await ws.recv()


async def test_stop_closes_open_sockets_and_ends_the_servers(
    demo: RunningDemo, keyring: Keyring
) -> None:
    token = assertion(keyring, app="chat")
    async with unix_connect(
        str(demo.chat), "ws://chat.test/ws", additional_headers={"x-lychgate-assertion": token}
    ) as ws:
        await ws.recv()
        demo.stop.set()
        with pytest.raises(ConnectionClosed) as info:
            await drain(ws)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1012  # RFC 6455 section 7.4.1 (IANA): service restart
    async with asyncio.timeout(5):
        await demo.task


def test_prepare_makes_a_private_run_directory(data_dir: Path) -> None:
    settings = prepare_files(data_dir, {}, now=NOW).settings
    plan = prepare_demo(settings)
    run = data_dir / "run"
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    assert plan.sockets == {"whoami": run / "demo-whoami.sock", "chat": run / "demo-chat.sock"}
    assert plan.issuer == "http://localhost:8080"
    assert plan.jwks_url == "http://localhost:8080/.lychgate/jwks.json"
    assert plan.tls is None


def test_prepare_removes_stale_sockets_only(data_dir: Path) -> None:
    settings = prepare_files(data_dir, {}, now=NOW).settings
    run = data_dir / "run"
    run.mkdir(mode=0o700)
    stale = run / "demo-chat.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    not_a_socket = run / "demo-whoami.sock"
    not_a_socket.write_text("someone's file")
    prepare_demo(settings)
    assert not stale.exists()
    assert not_a_socket.read_text() == "someone's file"


def test_an_https_deployment_trusts_its_internal_ca(data_dir: Path) -> None:
    settings = prepare_files(
        data_dir, {}, public_url="https://lychgate.localhost:8443", now=NOW
    ).settings
    plan = prepare_demo(settings)
    assert isinstance(plan.tls, ssl.SSLContext)
    assert plan.tls.verify_mode == ssl.CERT_REQUIRED
    assert plan.jwks_url == "https://lychgate.localhost:8443/.lychgate/jwks.json"


def test_a_data_directory_too_long_for_the_demo_sockets_is_refused(tmp_path: Path) -> None:
    # The demo sockets' names are longer than authz.sock's: a directory that authz's check
    # passed made the demo apps crash on bind, with tracebacks, after everything had started.
    room = MAX_SOCKET_PATH_BYTES - len(os.fsencode(tmp_path / "x" / "run" / "authz.sock"))
    data_dir = tmp_path / ("x" * (room + 1))  # authz.sock fits, demo-whoami.sock does not
    settings = prepare_files(data_dir, {}, now=NOW).settings
    with pytest.raises(ConfigError) as caught:
        prepare_demo(settings)
    assert caught.value.field == "data_dir"
    assert "demo-" in str(caught.value)
    assert not (data_dir / "run").exists()


async def test_the_apps_remove_their_sockets_when_they_stop(demo: RunningDemo) -> None:
    # They were left in run/ after every stop, looking like live apps.
    def sockets() -> list[bool]:
        return [demo.whoami.is_socket(), demo.chat.is_socket()]

    assert await asyncio.to_thread(sockets) == [True, True]
    demo.stop.set()
    async with asyncio.timeout(10):
        await demo.task
    assert await asyncio.to_thread(sockets) == [False, False]
