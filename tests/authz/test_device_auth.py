"""Signed device calls: every way a signature can be wrong is one 401 (SECURITY.md item 7)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from authz.conftest import Clock
from authz.device_fixtures import API, SignedClient, add_user, enroll_key
from fixtures.store import T0, make_device
from lychgate.authz.context import AuthzContext
from lychgate.gateway.http.failures import Throttle


async def test_a_signed_call_is_accepted_and_recorded(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    r = await SignedClient(client, clock, who).get("/apps")
    assert r.status_code == 200, r.text
    device = await ctx.store.devices.get(who.device.id)
    assert device.last_used_at == T0
    assert device.sign_count == 0


REFUSALS: list[Any] = [
    pytest.param({"key": Ed25519PrivateKey.generate()}, id="wrong-key"),
    pytest.param({"sign_path": API + "/sessions"}, id="wrong-path"),
    pytest.param({"sign_body": b'{"slug":"other"}'}, id="wrong-body"),
    pytest.param({"skew": -61}, id="stale-timestamp"),
    pytest.param({"skew": 61}, id="future-timestamp"),
    pytest.param({"device_id": "dev_unknown"}, id="unknown-device"),
    pytest.param({"device_id": "x" * 500}, id="huge-device-id"),
]


@pytest.mark.parametrize("spoil", REFUSALS)
async def test_a_spoiled_signature_is_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock, spoil: dict[str, Any]
) -> None:
    who = await enroll_key(ctx)
    r = await SignedClient(client, clock, who).post("/open", {"slug": "wiki"}, **spoil)
    assert r.status_code == 401
    assert r.json() == {"error": "device_auth"}
    assert (await ctx.store.devices.get(who.device.id)).last_used_at is None


async def test_the_edge_of_the_time_window_is_accepted(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    signed = SignedClient(client, clock, who)
    assert (await signed.get("/apps", skew=-60)).status_code == 200
    assert (await signed.get("/apps", skew=60)).status_code == 200


async def test_the_query_string_is_signed(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    signed = SignedClient(client, clock, who)
    ok = await signed.call("GET", API + "/apps?x=1")
    assert ok.status_code == 200
    moved = await signed.call("GET", API + "/apps?x=2", sign_path=API + "/apps?x=1")
    assert moved.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"lychgate-device": "dev_x"},
        {"lychgate-device": "dev_x", "lychgate-timestamp": "1", "lychgate-signature": "!"},
    ],
)
async def test_missing_headers_are_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.get(API + "/apps", headers=headers)
    assert (r.status_code, r.json()) == (401, {"error": "device_auth"})


async def test_malformed_headers_of_a_real_device_are_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    now = str(int(clock.now.timestamp()))
    malformed = [(now, ""), ("", "abc"), ("-5", "abc"), (now + "0" * 20, "a")]
    malformed.append(("\u00b2", "abc"))  # the byte B2 read as latin-1: isdigit(), not int()
    for timestamp, signature in malformed:
        r = await client.get(
            API + "/apps",
            headers={
                b"lychgate-device": who.device.id.encode(),
                b"lychgate-timestamp": timestamp.encode("latin-1"),
                b"lychgate-signature": signature.encode(),
            },
        )
        assert r.status_code == 401, (timestamp, signature)


async def test_a_revoked_device_is_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    await ctx.store.devices.revoke(who.device.id)
    r = await SignedClient(client, clock, who).get("/apps")
    assert (r.status_code, r.json()) == (401, {"error": "device_auth"})


async def test_a_disabled_user_is_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    await ctx.store.users.update(who.user.id, disabled=True)
    r = await SignedClient(client, clock, who).get("/apps")
    assert (r.status_code, r.json()) == (401, {"error": "device_auth"})


async def test_a_passkey_cannot_sign_device_calls(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Passkeys prove themselves with WebAuthn; their stored key is no Ed25519 device key."""
    who = await enroll_key(ctx)
    user = await add_user(ctx)
    passkey = make_device(user.id, public_key=who.device.public_key)
    await ctx.store.devices.add(passkey)
    r = await SignedClient(client, clock, who).get("/apps", device_id=passkey.id)
    assert r.status_code == 401


async def test_a_huge_body_is_refused_before_it_is_read(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    r = await SignedClient(client, clock, who).post("/open", {"slug": "x" * 20_000})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"


async def test_a_signed_body_that_is_not_json_is_a_422(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    signed = SignedClient(client, clock, who)
    for body in ({"slug": 5}, {"nothing": 1}, [1, 2]):
        r = await signed.post("/open", body)
        assert r.status_code == 422, body
        assert r.json()["error"] == "bad_request"


async def test_a_flood_of_unsigned_calls_is_one_line_per_reason(
    authz: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone can send calls signed by nobody: a line each would fill the operator's disk.
    now = [100.0]
    authz.state.device_refusals = Throttle(lambda: now[0])
    with caplog.at_level(logging.INFO, logger="lychgate.authz.device.errors"):
        for _ in range(5):
            assert (await client.get(API + "/apps")).status_code == 401
        now[0] += 11.0
        assert (await client.get(API + "/apps")).status_code == 401
    assert [r.getMessage() for r in caplog.records] == [
        "device call refused: device: missing or malformed device id",
        "device call refused: device: missing or malformed device id"
        " (4 more since the last report)",
    ]
