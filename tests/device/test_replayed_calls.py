"""The client and the server's single-use signatures (docs/sign-in-protocol.md, "Device calls").

Ed25519 signs deterministically, so the same state-changing call twice in one second (a script
opening one app twice) is the same bytes, which the server refuses the second time as a
replay. The client then signs once more with the next second; a third copy in that second is
refused with a message saying what happened, not "the server refused this device".
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest

from device.conftest import NOW
from device.fakeserver import FakeServer
from lychgate.device.client import DeviceClient
from lychgate.device.keyfile import KeyFile
from lychgate.devicesig import DeviceAuthError
from lychgate.gateway.paths import normalize_path


@pytest.fixture
async def client(
    server: FakeServer, key_file: KeyFile, tls: ssl.SSLContext
) -> AsyncIterator[DeviceClient]:
    async with server.connector().http(server.public_url, tls) as http:
        yield DeviceClient(http, key_file, clock=lambda: NOW)  # the clock stands still


async def test_the_same_call_in_the_same_second_is_signed_again(
    server: FakeServer, client: DeviceClient
) -> None:
    server.sessions["s1"] = {"browser": "Firefox", "ip": "192.0.2.1", "device": "dev_cli"}
    await client.open_app("wiki")
    await client.open_app("wiki")  # refused as a replay, then signed with the next second
    assert server.opened == [("dev_cli", "wiki"), ("dev_cli", "wiki")]


async def test_a_third_copy_in_one_second_is_refused_in_plain_words(
    server: FakeServer, client: DeviceClient
) -> None:
    for _ in range(2):
        await client.logout()
    with pytest.raises(DeviceAuthError) as caught:
        await client.logout()
    assert "already acted on this very request" in str(caught.value)
    assert "revoked" not in str(caught.value)  # not the message for a refused device


async def test_reads_are_not_signed_again(server: FakeServer, client: DeviceClient) -> None:
    for _ in range(3):
        await client.apps()
    assert server.signed_calls == [("GET", "/.lychgate/api/v1/device/apps")] * 3


async def test_every_path_the_client_signs_is_in_the_gateways_normal_form(
    server: FakeServer, client: DeviceClient
) -> None:
    # authz checks the signature over the path the gateway forwards, after normalizing it
    # (lychgate.gateway.paths): a client that signs its own request line must send that form.
    server.sessions["s1"] = {"browser": "Firefox", "ip": "192.0.2.1", "device": "dev_cli"}
    await client.apps()
    await client.sessions()
    await client.open_app("wiki")
    await client.revoke_session("s1")
    await client.logout()
    login = next(iter(server.logins))
    await client.login(login)  # type: ignore[arg-type]
    await client.deny(login)  # type: ignore[arg-type]
    assert len(server.signed_calls) == 7
    for _, path in server.signed_calls:
        assert normalize_path(path) == path
