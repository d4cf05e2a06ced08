"""A signed device request that changes state is accepted once (THREAT_MODEL.md T20).

A captured request (a proxy's log, plain HTTP on loopback) replayed byte for byte inside its
±60 s window used to act again: a logout signed out sessions begun after the capture, an open
pushed another navigation. Now its signature is recorded with the device, in the database, and
a second use is ``401 {"error": "device_auth", "detail": "replayed"}``, on any replica.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from authz.conftest import Clock, internal_client
from authz.device_fixtures import (
    API,
    DeviceKey,
    SignedClient,
    browser_session,
    enroll_key,
    pending_login,
)
from fixtures.store import T0, make_app
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.housekeeping import KEEP_USED_SIGNATURES, sweep
from lychgate.devicesig import MAX_SKEW, b64url, sign_request
from lychgate.domain import LoginStatus
from lychgate.events import InProcessBus
from lychgate.ids import AppSlug, session_handle
from lychgate.store import open_store

REPLAYED = {
    "error": "device_auth",
    "detail": "replayed",
    "message": "this signed request was used already; sign a new one",
}


def captured(
    who: DeviceKey, clock: Clock, method: str, path: str, body: object | None = None
) -> httpx.Request:
    """A signed request as a logging proxy would keep it, to send again as is."""
    content = b"" if body is None else json.dumps(body).encode()
    now = int(clock.now.timestamp())
    headers = sign_request(who.key, who.device.id, method, API + path, content, now).as_dict()
    if body is not None:
        headers["content-type"] = "application/json"
    return httpx.Request(
        method, "http://authz.internal" + API + path, content=content, headers=headers
    )


async def test_a_replayed_logout_signs_out_nothing_begun_since(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    request = captured(who, clock, "POST", "/logout")
    first = await client.send(request)
    assert (first.status_code, first.json()) == (200, {"revoked": 0})
    later = await browser_session(ctx, who)  # a browser signs in after the capture
    clock.now += timedelta(seconds=30)  # still inside the window
    replay = await client.send(request)
    assert (replay.status_code, replay.json()) == (401, REPLAYED)
    assert not (await ctx.store.sessions.get(later.id)).revoked


async def test_a_replayed_open_is_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    await ctx.store.apps.add(make_app(slug=AppSlug("wiki")))
    who = await enroll_key(ctx)
    await browser_session(ctx, who)
    request = captured(who, clock, "POST", "/open", {"slug": "wiki"})
    assert (await client.send(request)).status_code == 200
    replay = await client.send(request)
    assert (replay.status_code, replay.json()) == (401, REPLAYED)


async def test_a_replayed_session_revocation_and_approval_are_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    session = await browser_session(ctx, who)
    revoke = captured(who, clock, "DELETE", f"/sessions/{session_handle(session.id)}")
    assert (await client.send(revoke)).status_code == 204
    assert (await client.send(revoke)).json() == REPLAYED  # not even a 404 to learn from
    login = await pending_login(ctx, number=42)
    approve = captured(who, clock, "POST", f"/login/{login.id}/approve", {"number": 42})
    assert (await client.send(approve)).status_code == 200
    assert (await client.send(approve)).status_code == 401


async def test_reads_may_be_repeated(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    request = captured(who, clock, "GET", "/apps")
    for _ in range(3):
        assert (await client.send(request)).status_code == 200


async def test_the_same_call_signed_anew_is_accepted(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    # Ed25519 signs deterministically: only another timestamp makes another signature.
    who = await enroll_key(ctx)
    signed = SignedClient(client, clock, who)
    assert (await signed.post("/logout")).status_code == 200
    assert (await signed.post("/logout")).status_code == 401  # same second, same bytes
    assert (await signed.post("/logout", skew=1)).status_code == 200


async def test_copies_sent_at_once_act_once(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    await browser_session(ctx, who)
    request = captured(who, clock, "POST", "/logout")
    answers = await asyncio.gather(*(client.send(request) for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [200] + [401] * 5
    (ok,) = [r for r in answers if r.status_code == 200]
    assert ok.json() == {"revoked": 1}
    assert len(await ctx.store.audit.list(action_prefix="logout")) == 1


async def test_a_refused_signature_records_nothing(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    # Only an accepted signature is used up: a spoiled one (here the wrong device id) cannot
    # block the real request by being sent first.
    who = await enroll_key(ctx)
    other = await enroll_key(ctx)
    request = captured(who, clock, "POST", "/logout")
    request.headers["lychgate-device"] = other.device.id
    assert (await client.send(request)).json() == {"error": "device_auth"}
    assert (await SignedClient(client, clock, who).post("/logout")).status_code == 200


@pytest.fixture
async def second_replica(store_url: str, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """Another authz on the same database, with a connection pool of its own."""
    async with await open_store(store_url) as store:
        bus = InProcessBus()
        other_ctx = replace(ctx, store=store, bus=bus)
        app = create_app(other_ctx, poll_interval=0.05)
        try:
            async with app.router.lifespan_context(app), internal_client(app, other_ctx) as c:
                yield c
        finally:
            await bus.close()


async def test_a_request_used_on_one_replica_is_refused_on_another(
    ctx: AuthzContext, client: httpx.AsyncClient, second_replica: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    request = captured(who, clock, "POST", "/logout")
    assert (await client.send(request)).status_code == 200
    assert (await second_replica.send(request)).json() == REPLAYED
    racing = captured(who, clock, "DELETE", "/sessions/" + "h" * 22)
    answers = await asyncio.gather(client.send(racing), second_replica.send(racing))
    assert sorted(r.status_code for r in answers) == [401, 404]  # one acted, one refused


async def test_housekeeping_forgets_a_signature_only_well_after_its_window(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    request = captured(who, clock, "POST", "/logout")
    assert (await client.send(request)).status_code == 200
    signed_at = datetime.fromtimestamp(int(T0.timestamp()), UTC)  # whole seconds
    window_end = signed_at + timedelta(seconds=MAX_SKEW)
    clock.now = window_end + KEEP_USED_SIGNATURES
    assert (await sweep(ctx)).signatures == 0  # a replica's clock may lag: kept a while
    clock.now += timedelta(seconds=2)
    assert (await sweep(ctx)).signatures == 1
    # Forgotten, and still refused: by then the timestamp is far outside the window.
    assert (await client.send(request)).json() == {"error": "device_auth"}


async def test_a_device_stored_with_a_weak_key_is_refused(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    # A key enrolled before keys were checked: all zeros (a point of order 4). The constant,
    # key-less signature of the probe (R of order 2, S = 0) passed for a third of timestamps.
    weak = (await enroll_key(ctx, name="weak", public_key=bytes(32))).device
    forged = b64url(b"\xec" + b"\xff" * 30 + b"\x7f" + bytes(32))
    for back in range(12):
        headers = {
            "lychgate-device": weak.id,
            "lychgate-timestamp": str(int(clock.now.timestamp()) - back),
            "lychgate-signature": forged,
        }
        r = await client.get(API + "/apps", headers=headers)
        assert (r.status_code, r.json()) == (401, {"error": "device_auth"}), back
    assert (await ctx.store.devices.get(weak.id)).last_used_at is None
    login = await pending_login(ctx, number=42)
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.PENDING
