"""The device's half of a QR login: context, the number check, approve, deny, rate limits."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import httpx
from fastapi import FastAPI

from authz.conftest import Clock
from authz.device_fixtures import (
    SignedClient,
    enroll_key,
    next_event,
    pending_login,
)
from fixtures.store import T0
from lychgate.authz.app import shared_limit
from lychgate.authz.context import AuthzContext
from lychgate.authz.device.login import choices_for
from lychgate.domain import LoginStatus
from lychgate.events import LoginApproved, LoginDenied
from lychgate.ids import AppSlug


def test_choices_are_three_distinct_two_digit_numbers_with_the_right_one() -> None:
    positions = set()
    for number in (10, 42, 99):
        for i in range(200):
            choices = choices_for(number, secrets.token_bytes(32) + bytes([i]))
            assert len(set(choices)) == 3
            assert number in choices
            assert all(10 <= c <= 99 for c in choices)
            positions.add(choices.index(number))
    assert positions == {0, 1, 2}


def test_choices_are_stable_for_one_request() -> None:
    seed = secrets.token_bytes(32)
    assert all(choices_for(42, seed) == choices_for(42, seed) for _ in range(20))


async def test_the_device_sees_where_the_request_comes_from(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(
        ctx, number=37, user_agent="Firefox/130", ip="192.0.2.7", app_slug=AppSlug("wiki")
    )
    r = await SignedClient(client, clock, who).get(f"/login/{login.id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == login.id
    assert body["status"] == "pending"
    assert (body["browser"], body["ip"], body["app"]) == ("Firefox/130", "192.0.2.7", "wiki")
    assert body["requested_at"] == "2030-01-02T03:04:05Z"
    assert 37 in body["choices"]
    assert len(set(body["choices"])) == 3
    assert r.headers["cache-control"] == "no-store"


async def test_an_expired_request_shows_as_expired(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(ctx)
    clock.now = login.expires_at
    r = await SignedClient(client, clock, who).get(f"/login/{login.id}")
    assert r.json()["status"] == "expired"


async def test_unknown_requests_are_404(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    signed = SignedClient(client, clock, await enroll_key(ctx))
    for rid in ("nope", "x" * 300, "lr_%00x", "lr_%C3%A9"):  # a NUL: PostgreSQL's 503 before
        assert (await signed.get(f"/login/{rid}")).status_code == 404
        assert (await signed.post(f"/login/{rid}/approve", {"number": 42})).status_code == 404
        assert (await signed.post(f"/login/{rid}/deny")).status_code == 404


async def test_approval_binds_the_request_to_the_device_and_its_user(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(ctx, number=42)
    async with ctx.bus.subscribe() as events:
        r = await SignedClient(client, clock, who).post(
            f"/login/{login.id}/approve", {"number": 42}
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "approved"}
        event = await next_event(events, LoginApproved)
    assert event == LoginApproved(login.id, who.user.id, who.device.id)
    stored = await ctx.store.login_requests.get(login.id)
    assert (stored.status, stored.user_id, stored.device_id) == (
        LoginStatus.APPROVED,
        who.user.id,
        who.device.id,
    )
    (audit,) = await ctx.store.audit.list(action_prefix="login.")
    assert (audit.action, audit.actor_device_id, audit.details["login"]) == (
        "login.approved",
        who.device.id,
        login.id,
    )


async def test_a_wrong_number_denies_the_request_for_good(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(ctx, number=42)
    signed = SignedClient(client, clock, who)
    async with ctx.bus.subscribe() as events:
        r = await signed.post(f"/login/{login.id}/approve", {"number": 24})
        assert r.status_code == 409
        assert r.json()["error"] == "wrong_number"
        assert await next_event(events, LoginDenied) == LoginDenied(login.id)
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.DENIED
    (audit,) = await ctx.store.audit.list(action_prefix="login.")
    assert (audit.action, audit.details["reason"]) == ("login.denied", "wrong_number")
    # No second guess: the right number now finds a denied request.
    retry = await signed.post(f"/login/{login.id}/approve", {"number": 42})
    assert retry.status_code == 409
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.DENIED


async def test_garbage_numbers_are_422_and_deny_nothing(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    login = await pending_login(ctx, number=42)
    signed = SignedClient(client, clock, await enroll_key(ctx))
    for body in ({}, {"number": "42"}, {"number": True}, {"number": 4.2}, {"number": -1}):
        r = await signed.post(f"/login/{login.id}/approve", body)
        assert r.status_code == 422, body
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.PENDING


async def test_approving_twice_has_one_winner(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    other = await enroll_key(ctx, who.user, name="second laptop")
    login = await pending_login(ctx, number=42)
    path = f"/login/{login.id}/approve"
    first, second = await asyncio.gather(
        SignedClient(client, clock, who).post(path, {"number": 42}),
        SignedClient(client, clock, other).post(path, {"number": 42}),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    # Signed anew (a second later): the same bytes again would be refused as a replay.
    again = await SignedClient(client, clock, who).post(path, {"number": 42}, skew=1)
    assert again.status_code == 409
    assert len(await ctx.store.audit.list(action_prefix="login.approved")) == 1


async def test_an_expired_request_cannot_be_approved(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(ctx, number=42)
    clock.now = login.expires_at + timedelta(seconds=1)
    r = await SignedClient(client, clock, who).post(f"/login/{login.id}/approve", {"number": 42})
    assert r.status_code == 409
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.PENDING


async def test_a_request_approved_by_another_user_is_invisible(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    """SECURITY.md item 7: someone else's (already approved) request is 404, like no request."""
    owner = await enroll_key(ctx)
    intruder = await enroll_key(ctx)
    login = await pending_login(ctx, number=42)
    ok = await SignedClient(client, clock, owner).post(f"/login/{login.id}/approve", {"number": 42})
    assert ok.status_code == 200
    signed = SignedClient(client, clock, intruder)
    assert (await signed.get(f"/login/{login.id}")).status_code == 404
    r = await signed.post(f"/login/{login.id}/approve", {"number": 42})
    assert r.status_code == 404
    assert (await signed.post(f"/login/{login.id}/deny")).status_code == 404
    stored = await ctx.store.login_requests.get(login.id)
    assert (stored.status, stored.user_id) == (LoginStatus.APPROVED, owner.user.id)


async def test_deny(ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(ctx)
    signed = SignedClient(client, clock, who)
    async with ctx.bus.subscribe() as events:
        r = await signed.post(f"/login/{login.id}/deny")
        assert (r.status_code, r.json()) == (200, {"status": "denied"})
        assert await next_event(events, LoginDenied) == LoginDenied(login.id)
    (audit,) = await ctx.store.audit.list(action_prefix="login.denied")
    assert audit.details["reason"] == "user"
    assert (await signed.post(f"/login/{login.id}/deny", skew=1)).status_code == 409
    assert (await signed.post(f"/login/{login.id}/approve", {"number": 42})).status_code == 409


async def test_approvals_are_rate_limited_per_device(
    ctx: AuthzContext, authz: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    authz.state.approve_limiter = shared_limit(ctx, "approve", 3, "approvals", monotonic=lambda: 0)
    who = await enroll_key(ctx)
    other = await enroll_key(ctx)
    signed = SignedClient(client, clock, who)
    for second in range(3):  # each signed anew: not a replay
        r = await signed.post("/login/nope/approve", {"number": 42}, skew=second)
        assert r.status_code == 404
    login = await pending_login(ctx, number=42)
    r = await signed.post(f"/login/{login.id}/approve", {"number": 42})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60"
    assert r.json()["error"] == "rate_limited"
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.PENDING
    # Another device has its own budget.
    ok = await SignedClient(client, clock, other).post(f"/login/{login.id}/approve", {"number": 42})
    assert ok.status_code == 200


async def test_a_device_revoked_after_signing_in_cannot_approve(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    login = await pending_login(ctx, number=42)
    await ctx.store.devices.revoke(who.device.id)
    r = await SignedClient(client, clock, who).post(f"/login/{login.id}/approve", {"number": 42})
    assert r.status_code == 401
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.PENDING
    assert login.expires_at > T0
