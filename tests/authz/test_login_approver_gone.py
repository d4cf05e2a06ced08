"""An approved sign-in whose approver can no longer sign in is denied for good.

``lychgate user disable`` denies every such approval of the user's (probe finding: one
approved before the disable was finished into a session after ``user enable``); a finish that
finds the user disabled or the device revoked starts no session, denies its request, and says
``approver_gone``.
"""

from __future__ import annotations

import httpx

from authz.login_fixtures import API, approved, browser, finish
from lychgate.authz.context import AuthzContext
from lychgate.deployment.users import disable_user, enable_user

__all__ = ["browser"]  # the fixture


async def _status(browser: httpx.AsyncClient, login_id: str) -> str:
    r = await browser.get(f"{API}/{login_id}")
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


async def test_an_approval_does_not_survive_disable_then_enable(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    dave, login_id = await approved(ctx, browser)
    await disable_user(ctx.store, dave.user, ctx.clock())
    assert await _status(browser, login_id) == "denied"
    await enable_user(ctx.store, await ctx.store.users.get(dave.user.id), ctx.clock())
    r = await finish(browser, login_id)
    assert (r.status_code, r.json()) == (409, {"detail": "not_approved"})
    assert await ctx.store.sessions.list_for_user(dave.user.id) == []


async def test_a_finish_refused_for_a_revoked_device_denies_the_request(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    # A stolen key's holder could otherwise keep an approved request waiting, and finish it
    # once they saw the owner revoke the device (SECURITY.md item 7).
    dave, login_id = await approved(ctx, browser)
    assert await ctx.store.devices.revoke(dave.device.id)
    r = await finish(browser, login_id)
    assert (r.status_code, r.json()) == (409, {"detail": "approver_gone"})
    assert "lychgate_session" not in browser.cookies
    assert await _status(browser, login_id) == "denied"  # no longer "approved"
    again = await finish(browser, login_id)
    assert (again.status_code, again.json()) == (409, {"detail": "not_approved"})
    assert await ctx.store.sessions.list_for_user(dave.user.id) == []


async def test_a_finish_refused_for_a_disabled_user_stays_refused_after_enable(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    # Disabled by another path than disable_user (a raw update): the finish itself denies.
    dave, login_id = await approved(ctx, browser)
    await ctx.store.users.update(dave.user.id, disabled=True)
    r = await finish(browser, login_id)
    assert (r.status_code, r.json()) == (409, {"detail": "approver_gone"})
    assert await ctx.store.sessions.list_for_user(dave.user.id) == []
    await ctx.store.users.update(dave.user.id, disabled=False)
    again = await finish(browser, login_id)
    assert (again.status_code, again.json()) == (409, {"detail": "not_approved"})
