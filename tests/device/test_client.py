"""The device client against a fake server that verifies every signature for real."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from device.conftest import LOGIN_ID, NOW, USER
from device.fakeserver import FakeServer
from lychgate.device.answers import check_answer
from lychgate.device.client import Connector, DeviceClient, enroll
from lychgate.device.keyfile import KeyFile, new_private_key
from lychgate.device.urls import parse_enrollment_url
from lychgate.device.wire import BadAnswer
from lychgate.devicesig import DeviceAuthError, b64url
from lychgate.errors import ClientError, Conflict, LychgateError, NotFound, RateLimited
from lychgate.ids import LoginRequestId

LOGIN = LoginRequestId(LOGIN_ID)


@pytest.fixture
async def client(
    server: FakeServer, key_file: KeyFile, tls: ssl.SSLContext
) -> AsyncIterator[DeviceClient]:
    async with server.connector().http(server.public_url, tls) as http:
        yield DeviceClient(http, key_file, clock=lambda: NOW)


async def test_enroll_binds_a_new_key(server: FakeServer, tls: ssl.SSLContext) -> None:
    key = new_private_key()
    link = parse_enrollment_url(server.public_url + "/.lychgate/enroll/code-1")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    async with server.connector().http(server.public_url, tls) as http:
        key_file = await enroll(
            http, link, key, name="laptop", user_name=None, email=None, now=now, ca_file=None
        )
    (body,) = server.enroll_bodies
    assert body == {
        "code": "code-1",
        "public_key": b64url(key.public_key().public_bytes_raw()),
        "name": "laptop",
    }
    r = key_file.record
    assert (r.device_id, r.user_id, r.user_name, r.user_email) == (
        "dev_1",
        USER["id"],
        USER["name"],
        USER["email"],
    )
    assert (r.server, r.device_name, r.enrolled_at) == (server.public_url, "laptop", now)
    assert server.devices["dev_1"].public_key == key_file.public_key_raw()


async def test_admin_setup_sends_the_new_admin(server: FakeServer, tls: ssl.SSLContext) -> None:
    link = parse_enrollment_url(server.public_url + "/.lychgate/enroll/code-1")
    async with server.connector().http(server.public_url, tls) as http:
        await enroll(
            http,
            link,
            new_private_key(),
            name="laptop",
            user_name="Grace",
            email="grace@example.test",
            now=datetime.now(UTC),
            ca_file=None,
        )
    assert server.enroll_bodies[0]["user_name"] == "Grace"
    assert server.enroll_bodies[0]["email"] == "grace@example.test"


async def test_a_used_link_is_refused(server: FakeServer, tls: ssl.SSLContext) -> None:
    link = parse_enrollment_url(server.public_url + "/.lychgate/enroll/spent")
    async with server.connector().http(server.public_url, tls) as http:
        with pytest.raises(Conflict, match="unknown, used, cancelled or expired"):
            await enroll(
                http, link, new_private_key(), name="x", user_name=None, email=None,
                now=datetime.now(UTC), ca_file=None,
            )  # fmt: skip


async def test_a_server_calling_itself_something_else_is_refused(
    server: FakeServer, tls: ssl.SSLContext
) -> None:
    """The enrolled origin is where every later call goes: it must be the one we talked to."""
    server.public_url = "https://elsewhere.example"
    link = parse_enrollment_url("https://gate.example.test/.lychgate/enroll/code-1")
    async with server.connector().http("https://gate.example.test", tls) as http:
        with pytest.raises(BadAnswer, match="elsewhere"):
            await enroll(
                http, link, new_private_key(), name="x", user_name=None, email=None,
                now=datetime.now(UTC), ca_file=None,
            )  # fmt: skip


async def test_login_context(client: DeviceClient, server: FakeServer) -> None:
    context = await client.login(LOGIN)
    assert context.choices == (17, 42, 88)
    assert (context.browser, context.ip, context.app) == (
        server.logins[LOGIN_ID].browser,
        "203.0.113.7",
        "wiki",
    )
    # Signed over the exact path on the wire (the fake verified it with verify_request).
    assert server.signed_calls == [("GET", f"/.lychgate/api/v1/device/login/{LOGIN_ID}")]


async def test_approve_with_the_right_number(client: DeviceClient, server: FakeServer) -> None:
    await client.approve(LOGIN, 42)
    assert server.logins[LOGIN_ID].status == "approved"
    assert server.logins[LOGIN_ID].approved_by == "dev_cli"


async def test_a_wrong_number_denies(client: DeviceClient, server: FakeServer) -> None:
    with pytest.raises(Conflict, match="wrong number"):
        await client.approve(LOGIN, 17)
    assert server.logins[LOGIN_ID].status == "denied"
    with pytest.raises(Conflict, match="denied"):  # no second guess
        await client.approve(LOGIN, 42)


async def test_deny(client: DeviceClient, server: FakeServer) -> None:
    await client.deny(LOGIN)
    assert server.logins[LOGIN_ID].status == "denied"


async def test_unknown_request(client: DeviceClient) -> None:
    with pytest.raises(NotFound, match="no such login request"):
        await client.login(LoginRequestId("l_unknown"))


async def test_revoked_device(client: DeviceClient, server: FakeServer) -> None:
    server.devices["dev_cli"].revoked = True
    with pytest.raises(DeviceAuthError, match="revoked"):
        await client.apps()


async def test_a_key_the_server_does_not_know(
    server: FakeServer, key_file: KeyFile, tls: ssl.SSLContext
) -> None:
    stranger = KeyFile(key_file.record, new_private_key())
    async with server.connector().http(server.public_url, tls) as http:
        with pytest.raises(DeviceAuthError, match="key file is not the one enrolled"):
            await DeviceClient(http, stranger, clock=lambda: NOW).apps()


@pytest.mark.parametrize(("skew", "ok"), [(-60, True), (60, True), (-61, False), (61, False)])
async def test_clock_skew(
    server: FakeServer, key_file: KeyFile, tls: ssl.SSLContext, skew: int, ok: bool
) -> None:
    async with server.connector().http(server.public_url, tls) as http:
        client = DeviceClient(http, key_file, clock=lambda: NOW + skew)
        if ok:
            await client.apps()
        else:
            with pytest.raises(DeviceAuthError, match="clock"):
                await client.apps()


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("17", 17),
        ("0", 1),
        ("soon", 60),
        (format_datetime(datetime.fromtimestamp(4_000_000_000, UTC), usegmt=True), 86_400),
    ],
)
async def test_rate_limited(
    client: DeviceClient, server: FakeServer, header: str, wait: int
) -> None:
    server.retry_after = header
    with pytest.raises(RateLimited) as caught:
        await client.approve(LOGIN, 42)
    assert caught.value.retry_after == wait
    assert f"try again in {wait} s" in str(caught.value)


async def test_apps_open_sessions_logout(client: DeviceClient, server: FakeServer) -> None:
    assert [a.slug for a in await client.apps()] == ["wiki", "grafana"]
    with pytest.raises(NotFound, match="no live browser session"):
        await client.open_app("wiki")
    server.sessions["s_1"] = {"browser": "Firefox", "ip": "192.0.2.1", "device": "dev_cli"}
    server.sessions["s_2"] = {"browser": "Chrome", "ip": "192.0.2.2", "device": "dev_other"}
    await client.open_app("wiki")
    assert server.opened == [("dev_cli", "wiki")]
    listed = await client.sessions()
    assert [(s.id, s.browser, s.this_device) for s in listed] == [
        ("s_1", "Firefox", True),
        ("s_2", "Chrome", False),
    ]
    await client.revoke_session("s_2")
    with pytest.raises(Conflict, match="that session has already ended"):
        await client.revoke_session("s_2")
    with pytest.raises(NotFound, match="no such session"):
        await client.revoke_session("s_3")
    assert await client.logout() == 1
    assert server.sessions == {}


@pytest.mark.parametrize("bad", ["../apps", "a/b", "a?b", "", "a%2f", "x" * 129])
async def test_ids_never_change_the_path(
    client: DeviceClient, server: FakeServer, bad: str
) -> None:
    with pytest.raises(ClientError):
        await client.revoke_session(bad)
    with pytest.raises(ClientError):
        await client.login(LoginRequestId(bad))
    assert server.signed_calls == []


async def test_server_messages_are_defanged(client: DeviceClient, server: FakeServer) -> None:
    server.override = (409, {"error": "conflict", "message": "[bold]\x1b[31mfake\nline"})
    with pytest.raises(Conflict) as caught:
        await client.approve(LOGIN, 42)
    text = str(caught.value)
    assert "\x1b" not in text
    assert "\n" not in text
    assert "[" not in text


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (302, {}, BadAnswer),
        (500, {"message": "boom"}, LychgateError),
        (503, {"error": "unavailable"}, LychgateError),
        (422, {"error": "bad_request", "message": "number"}, ClientError),
        (200, {"choices": "nope"}, BadAnswer),
    ],
)
async def test_other_answers(
    client: DeviceClient,
    server: FakeServer,
    status: int,
    body: dict[str, object],
    error: type[Exception],
) -> None:
    server.override = (status, body)
    with pytest.raises(error):
        await client.login(LOGIN)


class Refusing(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] unknown ca", request=request)


async def test_unreachable_server_hints_at_ca(key_file: KeyFile, tls: ssl.SSLContext) -> None:
    connector = Connector(transport=lambda _tls: Refusing(), clock=lambda: NOW)
    async with connector.http("https://gate.example.test", tls) as http:
        with pytest.raises(LychgateError, match=r"cannot reach.*--ca"):
            await DeviceClient(http, key_file, clock=lambda: NOW).apps()


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        (
            {"x-request-id": "5b1e0c9a7d2f4e8b3a6c1d0e"},
            "(502; request id 5b1e0c9a7d2f4e8b3a6c1d0e)",
        ),
        ({}, "(502)"),
        ({"x-request-id": "\x1b[31mred"}, "(502)"),  # not a shape the gateway gives: not shown
    ],
)
def test_a_server_failure_quotes_the_request_id(headers: dict[str, str], said: str) -> None:
    # What the user can tell whoever runs the server, whose logs name the request by it.
    answer = httpx.Response(502, headers=headers, text="502 Bad Gateway\n")
    with pytest.raises(LychgateError) as caught:
        check_answer(answer, what="approve")
    assert str(caught.value) == f"approve: the server failed {said}"
