"""The user's browser sessions from a device: list, revoke one, log out (DESIGN.md flow 6)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from authz.conftest import Clock
from authz.device_fixtures import SignedClient, browser_session, enroll_key, next_event
from fixtures.store import T0
from lychgate.authz.context import AuthzContext
from lychgate.events import SessionRevoked
from lychgate.ids import session_handle

NO_SUCH = {"error": "not_found", "message": "no such session", "field": "id"}


async def test_the_list_shows_only_the_users_live_sessions(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    phone = await enroll_key(ctx, who.user, name="phone")
    stranger = await enroll_key(ctx)
    mine = await browser_session(ctx, who, user_agent="Firefox")
    by_phone = await browser_session(ctx, phone)
    await browser_session(ctx, stranger)
    gone = await browser_session(ctx, who)
    await ctx.store.sessions.revoke(gone.id, T0)
    idle = await browser_session(ctx, who, last_seen_at=T0 - timedelta(hours=3))
    r = await SignedClient(client, clock, who).get("/sessions")
    assert r.status_code == 200
    listed = {s["id"]: s for s in r.json()["sessions"]}
    assert set(listed) == {session_handle(mine.id), session_handle(by_phone.id)}
    assert listed[session_handle(mine.id)]["this_device"] is True
    assert listed[session_handle(by_phone.id)]["this_device"] is False
    assert listed[session_handle(mine.id)]["browser"] == "Firefox"
    assert listed[session_handle(mine.id)]["created_at"] == "2030-01-02T03:04:05Z"
    # Session ids are the portal cookie's value: a device never sees one.
    for session in (mine, by_phone, idle):
        assert session.id not in r.text


async def test_a_device_revokes_its_users_session(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    session = await browser_session(ctx, who)
    signed = SignedClient(client, clock, who)
    handle = session_handle(session.id)
    async with ctx.bus.subscribe() as events:
        r = await signed.delete(f"/sessions/{handle}")
        assert r.status_code == 204
        event = await next_event(events, SessionRevoked)
    assert event == SessionRevoked(session.id, who.user.id)
    assert (await ctx.store.sessions.get(session.id)).revoked
    again = await signed.delete(f"/sessions/{handle}", skew=1)
    assert (again.status_code, again.json()["error"]) == (409, "session_ended")
    (audit,) = await ctx.store.audit.list(action_prefix="session.revoked")
    assert audit.details == {"session": session.id}


async def test_the_raw_session_id_does_not_name_a_session(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    session = await browser_session(ctx, who)
    assert (
        await SignedClient(client, clock, who).delete(f"/sessions/{session.id}")
    ).status_code == 404
    assert not (await ctx.store.sessions.get(session.id)).revoked


async def test_another_users_session_is_404_and_stays_live(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    stranger = await enroll_key(ctx)
    theirs = await browser_session(ctx, stranger)
    ended = await browser_session(ctx, stranger)  # another user's, ended: no "has ended" either
    await ctx.store.sessions.revoke(ended.id, T0)
    signed = SignedClient(client, clock, who)
    for sid in (session_handle(theirs.id), session_handle(ended.id), "nope", "x" * 300):
        r = await signed.delete(f"/sessions/{sid}")
        assert (r.status_code, r.json()) == (404, NO_SUCH)
    assert not (await ctx.store.sessions.get(theirs.id)).revoked


async def test_logout_revokes_what_this_device_signed_in(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    phone = await enroll_key(ctx, who.user, name="phone")
    first = await browser_session(ctx, who)
    second = await browser_session(ctx, who, last_seen_at=T0 - timedelta(hours=3))  # idle
    by_phone = await browser_session(ctx, phone)
    r = await SignedClient(client, clock, who).post("/logout")
    assert (r.status_code, r.json()) == (200, {"revoked": 2})
    assert (await ctx.store.sessions.get(first.id)).revoked
    assert (await ctx.store.sessions.get(second.id)).revoked
    assert not (await ctx.store.sessions.get(by_phone.id)).revoked
    (audit,) = await ctx.store.audit.list(action_prefix="logout")
    assert (audit.actor_device_id, audit.details) == (who.device.id, {"sessions": "2"})
    again = await SignedClient(client, clock, who).post("/logout", skew=1)
    assert again.json() == {"revoked": 0}
