"""What enrolling without ``user_name`` says: an open setup link is told it needs the new
admin's name; every other code (unknown, used, expired, an ordinary link's) is refused alike."""

from __future__ import annotations

from datetime import timedelta

import httpx

from authz.conftest import Clock
from authz.device_fixtures import add_user
from authz.test_enroll import ENROLL, body_for, enroll_link, setup_code
from fixtures.store import T0
from lychgate.authz.context import AuthzContext

NAME_REQUIRED = {
    "error": "user_name_required",
    "message": "this is an admin setup link: give the new admin's name with --user-name NAME "
    "(and --email)",
    "field": "user_name",
}
REFUSED = {
    "error": "code_refused",
    "message": "unknown, used, cancelled or expired enrollment code",
    "field": "code",
}


async def test_an_open_setup_link_without_a_name_says_what_it_needs(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code = await setup_code(ctx)
    r = await client.post(ENROLL, json=body_for(code, email="root@example.test"))
    assert (r.status_code, r.json()) == (400, NAME_REQUIRED)
    assert (await client.post(ENROLL, json=body_for(code, user_name="Root"))).status_code == 201


async def test_codes_that_are_no_open_setup_link_all_look_alike(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    used = await setup_code(ctx)
    expired = await setup_code(ctx)
    ordinary_used, _ = await enroll_link(ctx)
    assert (await client.post(ENROLL, json=body_for(ordinary_used))).status_code == 201
    assert (await client.post(ENROLL, json=body_for(used, user_name="Root"))).status_code == 201
    clock.now = T0 + timedelta(days=2)  # the second setup link has expired
    for code in (used, expired, ordinary_used, "x" * 43):
        r = await client.post(ENROLL, json=body_for(code))
        assert (r.status_code, r.json()) == (409, REFUSED), code


async def test_a_setup_link_still_open_once_an_admin_exists_is_refused_alike(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code = await setup_code(ctx)
    await add_user(ctx, is_admin=True)
    r = await client.post(ENROLL, json=body_for(code))
    assert (r.status_code, r.json()) == (409, REFUSED)
