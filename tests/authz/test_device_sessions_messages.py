"""What revoking a session from a device says when the session has already ended."""

from __future__ import annotations

from datetime import timedelta

import httpx

from authz.conftest import Clock
from authz.device_fixtures import SignedClient, browser_session, enroll_key
from fixtures.store import T0
from lychgate.authz.context import AuthzContext
from lychgate.ids import session_handle

ENDED = {"error": "session_ended", "message": "that session has already ended", "field": "id"}
NO_SUCH = {"error": "not_found", "message": "no such session", "field": "id"}


async def test_an_expired_session_of_ones_own_has_ended(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    phone = await enroll_key(ctx, who.user, name="phone")
    expired = await browser_session(ctx, phone, expires_at=T0 - timedelta(seconds=1))
    r = await SignedClient(client, clock, who).delete(f"/sessions/{session_handle(expired.id)}")
    assert (r.status_code, r.json()) == (409, ENDED)


async def test_another_users_ended_session_is_still_no_such_session(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    stranger = await enroll_key(ctx)
    theirs = await browser_session(ctx, stranger)
    await ctx.store.sessions.revoke(theirs.id, T0)
    signed = SignedClient(client, clock, who)
    for handle in (session_handle(theirs.id), "nope", "x" * 300):
        r = await signed.delete(f"/sessions/{handle}")
        assert (r.status_code, r.json()) == (404, NO_SUCH)
