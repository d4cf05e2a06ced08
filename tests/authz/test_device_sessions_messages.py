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


async def test_an_expired_session_of_ones_own_has_ended(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    who = await enroll_key(ctx)
    phone = await enroll_key(ctx, who.user, name="phone")
    expired = await browser_session(ctx, phone, expires_at=T0 - timedelta(seconds=1))
    r = await SignedClient(client, clock, who).delete(f"/sessions/{session_handle(expired.id)}")
    assert (r.status_code, r.json()) == (409, ENDED)
