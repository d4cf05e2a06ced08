"""Enrollment links and the first admin's setup link (DESIGN.md flows 1 and 3).

SECURITY.md items 6 and 7: a link enrolls one device, once, within 24 hours; a setup link is
dead once an admin exists; nothing that merely looks at a link uses it up; a client IP that
fails too often is refused for a while.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from authz.conftest import Clock
from authz.device_fixtures import DeviceKey, SignedClient, add_user, raw_public
from fixtures.store import T0
from lychgate.authz.app import shared_limit
from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import issue_handoff
from lychgate.deployment.enroll import issue_admin_setup_link, issue_enrollment_link
from lychgate.devicesig import b64url
from lychgate.errors import Conflict
from lychgate.ids import SessionId

ENROLL = "/.lychgate/api/v1/device/enroll"
PREFIX = "http://localhost:8080/.lychgate/enroll/"


def code_of(url: str) -> str:
    assert url.startswith(PREFIX), url
    return url.removeprefix(PREFIX)


def body_for(code: str, key: Ed25519PrivateKey | None = None, **extra: Any) -> dict[str, Any]:
    key = key or Ed25519PrivateKey.generate()
    return {"code": code, "public_key": b64url(raw_public(key)), "name": "laptop", **extra}


async def enroll_link(ctx: AuthzContext, **user_fields: Any) -> tuple[str, Any]:
    user = await add_user(ctx, **user_fields)
    url = await issue_enrollment_link(ctx.store, ctx.settings, user.id, ctx.clock())
    return code_of(url), user


async def test_a_link_enrolls_a_device_that_can_then_sign(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    code, user = await enroll_link(ctx, name="Ada", email="ada@example.test")
    key = Ed25519PrivateKey.generate()
    r = await client.post(ENROLL, json=body_for(code, key, name="Ada's laptop"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"] == {"id": user.id, "name": "Ada", "email": "ada@example.test"}
    assert body["public_url"] == "http://localhost:8080"
    device = await ctx.store.devices.get(body["device_id"])
    assert (device.user_id, device.kind, device.name) == (user.id, "device_key", "Ada's laptop")
    assert device.public_key == raw_public(key)
    (audit,) = await ctx.store.audit.list(action_prefix="device.")
    assert (audit.action, audit.actor_device_id, audit.details["via"]) == (
        "device.enrolled",
        device.id,
        "enroll",
    )
    signed = SignedClient(client, clock, DeviceKey(key, device, user))
    assert (await signed.get("/apps")).status_code == 200


async def test_a_link_enrolls_once(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    code, user = await enroll_link(ctx)
    assert (await client.post(ENROLL, json=body_for(code))).status_code == 201
    replay = await client.post(ENROLL, json=body_for(code))
    assert replay.status_code == 409
    assert replay.json()["error"] == "code_refused"
    assert len(await ctx.store.devices.list_for_user(user.id)) == 1


async def test_racing_devices_get_one_enrollment(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code, user = await enroll_link(ctx)
    results = await asyncio.gather(*(client.post(ENROLL, json=body_for(code)) for _ in range(4)))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    assert len(await ctx.store.devices.list_for_user(user.id)) == 1


async def test_a_link_expires_after_24_hours(
    ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock
) -> None:
    code, _ = await enroll_link(ctx)
    clock.now = T0 + timedelta(hours=24)
    assert (await client.post(ENROLL, json=body_for(code))).status_code == 409


async def test_codes_of_other_purposes_and_garbage_are_refused(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    user = await add_user(ctx)
    handoff = await issue_handoff(ctx, SessionId("s_1"), "wiki")  # type: ignore[arg-type]
    for code in (handoff, "nope", "é" * 10):
        r = await client.post(ENROLL, json=body_for(code))
        assert r.status_code == 409, code
    assert (await client.post(ENROLL, json=body_for("x" * 300))).status_code == 422
    assert await ctx.store.devices.list_for_user(user.id) == []


@pytest.mark.parametrize(
    "spoil",
    [
        {"public_key": "AAAA"},  # 3 bytes
        {"public_key": b64url(b"k" * 33)},
        {"public_key": "not base64!"},
        {"name": "   "},
        {"name": "tab\there"},
        # Bytes PostgreSQL refuses (a NUL: a 503 there, a 400 here), and names that would
        # read otherwise on an approval screen (DEL, C1, a right-to-left override).
        {"name": "lap\u0000top"},
        {"name": "del\u007f"},
        {"name": "c\u00851"},  # interior: strip() takes a trailing NEL as a blank
        {"name": "\u202egnp.exe"},
        # An ill-formed user_name or email is ignored by an ordinary link and refused,
        # unburnt, by a setup link: tests/authz/test_enroll_setup_fields.py.
    ],
)
async def test_a_bad_request_does_not_burn_the_link(
    ctx: AuthzContext, client: httpx.AsyncClient, spoil: dict[str, str]
) -> None:
    code, _ = await enroll_link(ctx)
    r = await client.post(ENROLL, json={**body_for(code), **spoil})
    assert r.status_code in (400, 422), r.text
    assert "field" in r.json()
    assert (await client.post(ENROLL, json=body_for(code))).status_code == 201


async def test_missing_fields_are_422(ctx: AuthzContext, client: httpx.AsyncClient) -> None:
    for body in ({}, {"code": "x"}, [1], "code"):
        assert (await client.post(ENROLL, json=body)).status_code == 422


async def test_links_are_not_issued_for_or_redeemed_by_disabled_users(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code, user = await enroll_link(ctx)
    await ctx.store.users.update(user.id, disabled=True)
    with pytest.raises(Conflict):
        await issue_enrollment_link(ctx.store, ctx.settings, user.id, T0)
    assert (await client.post(ENROLL, json=body_for(code))).status_code == 409
    assert await ctx.store.devices.list_for_user(user.id) == []


async def test_a_user_name_does_not_change_whom_an_enroll_code_binds(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code, user = await enroll_link(ctx)
    r = await client.post(ENROLL, json=body_for(code, user_name="Mallory", email="m@x.test"))
    assert r.status_code == 201
    assert r.json()["user"]["id"] == user.id
    assert await ctx.store.users.count_admins() == 0


# -- guessing (SECURITY.md item 7) ------------------------------------------------------------


def device_at(authz: FastAPI, ip: str) -> httpx.AsyncClient:
    """A device whose calls reach authz from TCP peer ``ip`` (no gateway: the peer is the IP)."""
    transport = httpx.ASGITransport(app=authz, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost:8080")


async def test_guessing_codes_is_rate_limited_per_client_ip(
    ctx: AuthzContext, authz: FastAPI, clock: Clock
) -> None:
    code, user = await enroll_link(ctx)
    now = [0.0]
    authz.state.enroll_limiter = shared_limit(
        ctx, "enroll", 10, "failed enrollment attempts", monotonic=lambda: now[0]
    )
    async with device_at(authz, "203.0.113.9") as guesser, device_at(authz, "192.0.2.1") as other:
        for i in range(10):
            assert (await guesser.post(ENROLL, json=body_for(f"guess{i}"))).status_code == 409
        r = await guesser.post(ENROLL, json=body_for(code))  # over the limit: not even tried
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert int(r.headers["retry-after"]) == 60
        assert (await other.post(ENROLL, json=body_for("guess"))).status_code == 409
        assert (await other.post(ENROLL, json=body_for(code))).status_code == 201
        assert len(await ctx.store.devices.list_for_user(user.id)) == 1
        now[0] = 60.0  # the window has passed (the count shared on PostgreSQL, which slides
        clock.now += timedelta(seconds=120)  # fixed windows, has forgotten it a window later)
        assert (await guesser.post(ENROLL, json=body_for("guess"))).status_code == 409


async def test_guesses_from_one_ipv6_64_count_together(ctx: AuthzContext, authz: FastAPI) -> None:
    for i in range(10):
        async with device_at(authz, f"2001:db8:5:6::{i + 1:x}") as guesser:
            assert (await guesser.post(ENROLL, json=body_for(f"guess{i}"))).status_code == 409
    async with device_at(authz, "2001:db8:5:6:abcd::1") as guesser:
        assert (await guesser.post(ENROLL, json=body_for("guess"))).status_code == 429


async def test_only_failed_redemptions_count(ctx: AuthzContext, authz: FastAPI) -> None:
    async with device_at(authz, "203.0.113.9") as device:
        for _ in range(12):
            code, _ = await enroll_link(ctx)
            assert (await device.post(ENROLL, json=body_for(code))).status_code == 201
            bad_key = {**body_for(code), "public_key": "AAAA"}
            assert (await device.post(ENROLL, json=bad_key)).status_code in (400, 422)
        for _ in range(10):
            assert (await device.post(ENROLL, json=body_for("guess"))).status_code == 409
        assert (await device.post(ENROLL, json=body_for("guess"))).status_code == 429


async def test_concurrent_guesses_do_not_overshoot_the_limit(
    ctx: AuthzContext, authz: FastAPI
) -> None:
    async with device_at(authz, "203.0.113.9") as guesser:
        results = await asyncio.gather(
            *(guesser.post(ENROLL, json=body_for(f"guess{i}")) for i in range(15))
        )
    assert sorted(r.status_code for r in results) == [409] * 10 + [429] * 5


# -- the first admin --------------------------------------------------------------------------


async def setup_code(ctx: AuthzContext) -> str:
    url = await issue_admin_setup_link(ctx.store, ctx.settings, ctx.clock())
    assert url is not None
    return code_of(url)


async def test_the_setup_link_creates_the_first_admin(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code = await setup_code(ctx)
    r = await client.post(ENROLL, json=body_for(code, user_name="Root", email="Root@Example.test"))
    assert r.status_code == 201, r.text
    user = await ctx.store.users.get(r.json()["user"]["id"])
    assert (user.name, user.email, user.is_admin) == ("Root", "Root@example.test", True)
    device = await ctx.store.devices.get(r.json()["device_id"])
    assert device.user_id == user.id
    (audit,) = await ctx.store.audit.list(action_prefix="device.")
    assert (audit.details["via"], audit.details["admin"]) == ("admin-setup", "yes")
    assert await issue_admin_setup_link(ctx.store, ctx.settings, T0) is None


async def test_setup_links_are_dead_once_an_admin_exists(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    first, second = await setup_code(ctx), await setup_code(ctx)
    assert first != second
    assert (await client.post(ENROLL, json=body_for(first, user_name="Root"))).status_code == 201
    r = await client.post(ENROLL, json=body_for(second, user_name="Eve"))
    assert r.status_code == 409
    assert r.json()["error"] == "code_refused"
    assert [u.name for u in await ctx.store.users.list()] == ["Root"]


async def test_racing_setup_links_make_one_admin(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    codes = [await setup_code(ctx) for _ in range(3)]
    results = await asyncio.gather(
        *(
            client.post(ENROLL, json=body_for(c, user_name=f"Admin {i}"))
            for i, c in enumerate(codes)
        )
    )
    statuses = sorted(r.status_code for r in results)
    # At most one wins; if the race is close, every racer may step down (fail closed).
    assert statuses in ([201, 409, 409], [409, 409, 409])
    assert await ctx.store.users.count_admins() == statuses.count(201)
    losers = [u for u in await ctx.store.users.list() if not u.is_admin]
    assert all(u.disabled for u in losers)
    for user in losers:
        assert await ctx.store.devices.list_for_user(user.id) == []


async def test_a_setup_link_needs_a_user_name_and_is_not_burnt_without_one(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code = await setup_code(ctx)
    r = await client.post(ENROLL, json=body_for(code))
    assert (r.status_code, r.json()["error"]) == (400, "user_name_required")
    assert "--user-name" in r.json()["message"]  # what to pass, as the CLI spells it
    assert (await client.post(ENROLL, json=body_for(code, user_name="Root"))).status_code == 201


async def test_a_setup_link_is_not_burnt_by_a_taken_email(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    await add_user(ctx, email="taken@example.test")
    code = await setup_code(ctx)
    r = await client.post(ENROLL, json=body_for(code, user_name="Root", email="taken@example.test"))
    assert (r.status_code, r.json()["field"]) == (409, "email")
    assert (await client.post(ENROLL, json=body_for(code, user_name="Root"))).status_code == 201


async def test_once_set_up_a_made_up_code_says_nothing_of_e_mail_addresses(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    # Else anyone could learn, ten tries a minute, which addresses belong to users.
    await add_user(ctx, is_admin=True, email="root@example.test")
    answers = [
        (await client.post(ENROLL, json=body_for("x" * 22, user_name="Eve", email=e))).json()
        for e in ("root@example.test", "nobody@example.test")
    ]
    assert answers[0] == answers[1]
    assert answers[0]["error"] == "code_refused"


# -- pages ------------------------------------------------------------------------------------


async def test_the_link_page_shows_how_to_enroll_and_does_not_redeem(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    code, _ = await enroll_link(ctx)
    for _ in range(2):  # link previewers fetch it, maybe twice
        r = await client.get(f"/.lychgate/enroll/{code}")
        assert r.status_code == 200
        assert f"lychgate device enroll {PREFIX}{code}" in r.text
        assert "<svg" in r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["content-security-policy"]
    assert (await client.post(ENROLL, json=body_for(code))).status_code == 201


@pytest.mark.parametrize(
    "code", ["%3Cscript%3Ealert(1)%3C%2Fscript%3E", "%3Cb%3E", "a%20b", "x" * 300, "%00"]
)
async def test_the_link_page_echoes_only_what_looks_like_a_code(
    ctx: AuthzContext, client: httpx.AsyncClient, code: str
) -> None:
    r = await client.get(f"/.lychgate/enroll/{code}")
    assert r.status_code == 404
    assert "<script>" not in r.text
    assert "<b>" not in r.text


async def test_the_setup_page_until_an_admin_exists(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    r = await client.get("/.lychgate/setup")
    assert r.status_code == 200
    assert "lychgate init" in r.text
    assert "LYCHGATE_DATA_DIR" in r.text  # the server's deployment, not a new one in ~
    assert str(ctx.settings.data_dir) not in r.text  # a stranger learns no path
    assert "lychgate device enroll" in r.text
    await add_user(ctx, is_admin=True)
    r = await client.get("/.lychgate/setup", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/.lychgate/")


async def test_the_login_qr_link_explains_how_to_approve(client: httpx.AsyncClient) -> None:
    r = await client.get("/.lychgate/d/login/abcDEF123_-")
    assert r.status_code == 200
    assert "lychgate device approve" in r.text
    assert "/.lychgate/d/login/abcDEF123_-" in r.text
    assert r.headers["cache-control"] == "no-store"
    bad = await client.get("/.lychgate/d/login/%3Cscript%3E")
    assert bad.status_code == 404
    assert "<script>" not in bad.text
