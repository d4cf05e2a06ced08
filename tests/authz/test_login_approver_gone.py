"""An approved sign-in whose approver can no longer sign in is denied for good.

``lychgate user disable`` denies every such approval of the user's (probe finding: one
approved before the disable was finished into a session after ``user enable``); a finish that
finds the user disabled or the device revoked denies its own, and says ``refused``.
"""

from __future__ import annotations

import httpx

from authz.login_fixtures import API, approve, browser, enrolled, finish, start
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
    dave = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], dave)
    await disable_user(ctx.store, dave.user, ctx.clock())
    assert await _status(browser, created["id"]) == "denied"
    await enable_user(ctx.store, await ctx.store.users.get(dave.user.id), ctx.clock())
    r = await finish(browser, created["id"])
    assert (r.status_code, r.json()) == (409, {"detail": "not_approved"})
    assert await ctx.store.sessions.list_for_user(dave.user.id) == []


async def test_a_finish_refused_for_a_revoked_device_denies_the_request(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    dave = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], dave)
    assert await ctx.store.devices.revoke(dave.device.id)
    r = await finish(browser, created["id"])
    assert (r.status_code, r.json()) == (409, {"detail": "approver_gone"})
    assert await _status(browser, created["id"]) == "denied"  # no longer "approved"
    again = await finish(browser, created["id"])
    assert (again.status_code, again.json()) == (409, {"detail": "not_approved"})
    assert await ctx.store.sessions.list_for_user(dave.user.id) == []


async def test_a_finish_refused_for_a_disabled_user_stays_refused_after_enable(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    # Disabled by another path than disable_user (a raw update): the finish itself denies.
    dave = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], dave)
    await ctx.store.users.update(dave.user.id, disabled=True)
    r = await finish(browser, created["id"])
    assert (r.status_code, r.json()) == (409, {"detail": "approver_gone"})
    await ctx.store.users.update(dave.user.id, disabled=False)
    again = await finish(browser, created["id"])
    assert (again.status_code, again.json()) == (409, {"detail": "not_approved"})
