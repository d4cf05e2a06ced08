"""Enrollment: the new admin's fields, which only a setup link reads; weak public keys; and
what a setup link that lost a race is told.

``user_name`` and ``email`` (``--user-name``/``--email`` of ``lychgate device enroll``) matter
to a setup link only. An ordinary link ignored a well-formed address but refused an ill-formed
one (probe finding); now it ignores both, whatever they hold, and a setup link still refuses
an ill-formed one before it is burnt.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI

from authz.conftest import Clock
from authz.test_enroll import ENROLL, body_for, device_at, enroll_link, setup_code
from fixtures.store import make_user
from lychgate.authz.app import shared_limit
from lychgate.authz.context import AuthzContext
from lychgate.authz.device.errors import ApiError
from lychgate.authz.enroll import service
from lychgate.devicesig import b64url
from lychgate.domain import User
from lychgate.store import Store, UserRepository

ILL_FORMED = [
    pytest.param({"user_name": "Mallory", "email": "m@x"}, id="email"),
    pytest.param({"user_name": "", "email": "m@example.test"}, id="empty-user-name"),
    pytest.param({"user_name": "a\u0000b"}, id="nul-in-user-name"),
    pytest.param({"user_name": "x", "email": "e\u0000ve@example.com"}, id="nul-in-email"),
    pytest.param({"email": "not-an-address"}, id="email-alone"),
]


@pytest.mark.parametrize("fields", ILL_FORMED)
async def test_an_ordinary_link_ignores_the_admin_fields_whatever_they_hold(
    ctx: AuthzContext, client: httpx.AsyncClient, fields: dict[str, str]
) -> None:
    code, user = await enroll_link(ctx, name="Dave", email="dave@example.test")
    r = await client.post(ENROLL, json={**body_for(code), **fields})
    assert r.status_code == 201, r.text
    assert r.json()["user"] == {"id": user.id, "name": "Dave", "email": "dave@example.test"}
    assert await ctx.store.users.get(user.id) == user


async def test_an_ordinary_link_ignores_well_formed_admin_fields_too(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code, user = await enroll_link(ctx)
    body = body_for(code, user_name="Mallory", email="m@example.test")
    assert (await client.post(ENROLL, json=body)).status_code == 201
    assert await ctx.store.users.get(user.id) == user


@pytest.mark.parametrize("fields", ILL_FORMED[:4])
async def test_a_setup_link_refuses_ill_formed_admin_fields_without_being_burnt(
    ctx: AuthzContext, client: httpx.AsyncClient, fields: dict[str, str]
) -> None:
    code = await setup_code(ctx)
    r = await client.post(ENROLL, json={**body_for(code), **fields})
    assert r.status_code == 400, r.text
    assert r.json()["field"] in ("user_name", "email")
    assert await ctx.store.users.count_admins() == 0
    good = await client.post(ENROLL, json=body_for(code, user_name="Root"))
    assert good.status_code == 201, good.text


async def test_ill_formed_admin_fields_with_a_guessed_code_count_as_a_failure(
    ctx: AuthzContext, authz: FastAPI
) -> None:
    # The code was tried (as an ordinary link): a guesser must not get free tries this way.
    authz.state.enroll_limiter = shared_limit(
        ctx, "enroll", 3, "failed enrollment attempts", monotonic=lambda: 0.0
    )
    async with device_at(authz, "203.0.113.9") as guesser:
        for i in range(3):
            body = body_for(f"guess{i}", user_name="x", email="m@x")
            assert (await guesser.post(ENROLL, json=body)).status_code == 400
        assert (await guesser.post(ENROLL, json=body_for("guess"))).status_code == 429


SMALL_ORDER_KEYS = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p: not canonical
]


@pytest.mark.parametrize("hex_key", SMALL_ORDER_KEYS)
async def test_a_weak_public_key_is_refused_and_the_link_kept(
    ctx: AuthzContext, client: httpx.AsyncClient, hex_key: str
) -> None:
    code, user = await enroll_link(ctx)
    body = {**body_for(code), "public_key": b64url(bytes.fromhex(hex_key))}
    r = await client.post(ENROLL, json=body)
    assert (r.status_code, r.json()["field"]) == (400, "public_key")
    assert await ctx.store.devices.list_for_user(user.id) == []
    assert (await client.post(ENROLL, json=body_for(code))).status_code == 201


class _RivalAppears:
    """The real users repository, but another setup link's admin is added the moment ours
    is: the race of two setup links, made to happen every time."""

    def __init__(self, real: UserRepository, rival: User) -> None:
        self._real = real
        self._rival = rival

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    async def add(self, user: User) -> None:
        await self._real.add(user)
        if user.is_admin:
            await self._real.add(self._rival)


async def test_a_setup_link_that_steps_down_says_why_and_frees_its_address(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    code = await setup_code(ctx)
    racing: Store = copy.copy(ctx.store)
    rival = make_user(is_admin=True, email="rival@example.test")
    racing.users = _RivalAppears(ctx.store.users, rival)  # type: ignore[assignment]
    request = service.check_request(
        code=code,
        public_key=body_for(code)["public_key"],
        name="laptop",
        user_name="Root",
        email="root@example.test",
    )
    with pytest.raises(ApiError) as caught:
        await service.enroll(replace(ctx, store=racing), request, ip="203.0.113.9")
    assert (caught.value.status, caught.value.kind) == (409, "code_refused")
    assert caught.value.message == service.RACED
    assert "an admin exists" not in caught.value.message  # it may not: both may step down
    assert "lychgate init" in caught.value.message
    (stepped_down,) = [u for u in await ctx.store.users.list() if u.id != rival.id]
    assert (stepped_down.disabled, stepped_down.is_admin, stepped_down.email) == (
        True,
        False,
        None,
    )
    # Had the rival stepped down too, a new link would take the same address.
    await ctx.store.users.update(rival.id, is_admin=False, disabled=True)
    again = await client.post(
        ENROLL,
        json=body_for(await setup_code(ctx), user_name="Root", email="root@example.test"),
    )
    assert again.status_code == 201, again.text
