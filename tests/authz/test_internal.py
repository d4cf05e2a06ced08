"""authz's internal API for gateways, in process (ASGI), over both store backends."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import replace
from datetime import timedelta
from functools import partial

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from authz.conftest import Clock
from fixtures.store import T0, make_app, make_session, make_user
from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import issue_handoff
from lychgate.authz.sessions_to_end import ENDED_LISTED_FOR, ended_listed_for
from lychgate.authz.snapshots import SnapshotPublisher, build_snapshot
from lychgate.domain import App, AppPolicy, Session, User
from lychgate.errors import TokenError
from lychgate.gateway.feed_http import FEED_PATH, REDEEM_PATH, REVOKE_PATH
from lychgate.gateway.feed_wire import parse_line, snapshot_line
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.ids import AppSlug, token_sid
from lychgate.store.schema import users
from lychgate.tokens import (
    AppTokenClaims,
    Keyring,
    PublicKeyring,
    encode_app_token,
    generate_signing_key,
    verify_app_token,
)


async def signed_in(
    ctx: AuthzContext, *, admin: bool = False, policy: AppPolicy = AppPolicy.ANY_USER
) -> tuple[User, App, Session]:
    user = make_user(is_admin=admin)
    await ctx.store.users.add(user)
    app = make_app(policy=policy)
    await ctx.store.apps.add(app)
    session = make_session(user.id)
    await ctx.store.sessions.create(session)
    return user, app, session


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic x", "bearer "])
async def test_internal_routes_need_the_secret(authz: FastAPI, auth: str | None) -> None:
    headers = {"authorization": auth} if auth else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=authz), base_url="http://a", headers=headers
    ) as c:
        for method, path in (("POST", REDEEM_PATH), ("POST", REVOKE_PATH)):
            r = await c.request(method, path, json={"code": "x", "session_id": "x"})
            assert r.status_code == 401
            # The secret is checked before the body is read or parsed: no 422 tells a
            # stranger which routes exist, and no body of any size is read for one.
            r = await c.request(
                method, path, content=b"{not json", headers={"content-type": "application/json"}
            )
            assert r.status_code == 401
        assert (await c.get(FEED_PATH)).status_code == 401


async def test_handoff_redeems_once_into_an_app_token(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    user, app, session = await signed_in(ctx)
    code = await issue_handoff(ctx, session.id, app.slug)
    r = await client.post(REDEEM_PATH, json={"code": code})
    assert r.status_code == 200
    token = r.json()["token"]
    jwks = (await client.get("/.lychgate/jwks.json")).json()
    claims = verify_app_token(
        PublicKeyring.from_jwks(jwks), token, now=T0, issuer=ctx.settings.public_url, app=app.slug
    )
    assert (claims.sid, claims.sub, claims.adm) == (token_sid(session.id), user.id, False)
    # The token names the session by its handle: its id, the portal cookie's bearer secret,
    # would let whoever holds a token for one app into the portal and every other app.
    payload = token.split(".")[1]
    assert session.id not in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    replay = await client.post(REDEEM_PATH, json={"code": code})
    assert replay.status_code == 400


async def test_a_gateway_revokes_a_session_by_the_handle_its_token_names(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    user, _, session = await signed_in(ctx)
    other, _, theirs = await signed_in(ctx)
    handle = token_sid(session.id)
    # Another user's handle, or a handle without its user, revokes nothing.
    for body in ({"session_id": handle, "user_id": other.id}, {"session_id": handle}):
        assert (await client.post(REVOKE_PATH, json=body)).status_code == 204
        assert not (await ctx.store.sessions.get(session.id)).revoked
    body = {"session_id": handle, "user_id": user.id}
    assert (await client.post(REVOKE_PATH, json=body)).status_code == 204
    assert (await ctx.store.sessions.get(session.id)).revoked
    assert not (await ctx.store.sessions.get(theirs.id)).revoked
    # A sign-in cookie's value is the id itself, as before.
    assert (await client.post(REVOKE_PATH, json={"session_id": theirs.id})).status_code == 204
    assert (await ctx.store.sessions.get(theirs.id)).revoked


async def test_handoff_expires(ctx: AuthzContext, client: httpx.AsyncClient, clock: Clock) -> None:
    _, app, session = await signed_in(ctx)
    code = await issue_handoff(ctx, session.id, app.slug)
    clock.now = T0 + timedelta(seconds=61)
    assert (await client.post(REDEEM_PATH, json={"code": code})).status_code == 400


@pytest.mark.parametrize(
    ("code", "status"),
    [("", 422), ("x" * 300, 422), ("not-a-code", 400)],  # the shape first, then the store
)
async def test_garbage_codes_are_refused(client: httpx.AsyncClient, code: str, status: int) -> None:
    r = await client.post(REDEEM_PATH, json={"code": code})
    assert r.status_code == status


async def test_a_revoked_session_gets_no_token(
    ctx: AuthzContext, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, app, session = await signed_in(ctx)
    code = await issue_handoff(ctx, session.id, app.slug)
    assert (await client.post(REVOKE_PATH, json={"session_id": session.id})).status_code == 204
    with caplog.at_level(logging.INFO, logger="lychgate.authz.internal"):
        assert (await client.post(REDEEM_PATH, json={"code": code})).status_code == 400
        assert (await client.post(REDEEM_PATH, json={"code": code})).status_code == 400
    events = await ctx.store.audit.list(action_prefix="session.")
    assert [e.action for e in events] == ["session.revoked"]
    # The log says why each was refused (it said "replayed" for both), naming no code.
    assert [r.getMessage() for r in caplog.records] == [
        "handoff refused: code: session is no longer valid",
        "handoff refused: code: unknown, used or expired code",
    ]
    assert code not in caplog.text


async def test_a_flood_of_refused_codes_is_one_line_per_reason(
    authz: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A made-up code in a sign-in link makes the gateway ask authz: anyone can send a
    # thousand a second, and a line each would fill the operator's disk.
    now = [100.0]
    authz.state.refused_handoffs = Throttle(lambda: now[0])
    made_up = "x" * 43
    with caplog.at_level(logging.INFO, logger="lychgate.authz.internal"):
        for _ in range(5):
            assert (await client.post(REDEEM_PATH, json={"code": made_up})).status_code == 400
        now[0] += 11.0
        assert (await client.post(REDEEM_PATH, json={"code": made_up})).status_code == 400
    assert [r.getMessage() for r in caplog.records] == [
        "handoff refused: code: unknown, used or expired code",
        "handoff refused: code: unknown, used or expired code (4 more since the last report)",
    ]


async def test_admin_apps_need_an_admin(ctx: AuthzContext, client: httpx.AsyncClient) -> None:
    _, app, session = await signed_in(ctx, policy=AppPolicy.ADMINS)
    code = await issue_handoff(ctx, session.id, app.slug)
    assert (await client.post(REDEEM_PATH, json={"code": code})).status_code == 400


async def test_admin_token_carries_the_flag(ctx: AuthzContext, client: httpx.AsyncClient) -> None:
    _, app, session = await signed_in(ctx, admin=True, policy=AppPolicy.ADMINS)
    code = await issue_handoff(ctx, session.id, app.slug)
    r = await client.post(REDEEM_PATH, json={"code": code})
    assert r.status_code == 200


async def test_app_token_never_outlives_its_session(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    user = make_user()
    await ctx.store.users.add(user)
    app = make_app()
    await ctx.store.apps.add(app)
    session = make_session(user.id, expires_at=T0 + timedelta(minutes=5))
    await ctx.store.sessions.create(session)
    code = await issue_handoff(ctx, session.id, AppSlug(app.slug))
    token = (await client.post(REDEEM_PATH, json={"code": code})).json()["token"]
    jwks = (await client.get("/.lychgate/jwks.json")).json()
    claims = verify_app_token(
        PublicKeyring.from_jwks(jwks), token, now=T0, issuer=ctx.settings.public_url
    )
    assert claims.exp <= session.expires_at


async def test_jwks_has_signing_and_assertion_keys_and_no_private_parts(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    keys = (await client.get("/.lychgate/jwks.json")).json()["keys"]
    kids = {k["kid"] for k in keys}
    assert ctx.secrets.assertion_key.kid in kids
    assert len(kids) == 2
    assert all("d" not in k for k in keys)


async def test_revocation_reaches_the_snapshot(
    ctx: AuthzContext, authz: FastAPI, client: httpx.AsyncClient
) -> None:
    _, _, session = await signed_in(ctx)
    publisher: SnapshotPublisher = authz.state.publisher
    snapshots = publisher.subscribe()
    first = await anext(snapshots)
    assert token_sid(session.id) not in first.revoked_sessions
    await client.post(REVOKE_PATH, json={"session_id": session.id})
    async with asyncio.timeout(1):
        while True:
            latest = await anext(snapshots)
            if token_sid(session.id) in latest.revoked_sessions:
                break
    assert latest.serial > first.serial
    await snapshots.aclose()


async def test_a_session_reaching_its_end_is_listed_for_a_while(
    ctx: AuthzContext, authz: FastAPI, clock: Clock
) -> None:
    # Its tokens have expired with it; the listing is for the WebSockets it still holds open.
    user, _, _ = await signed_in(ctx)
    ending = make_session(user.id, expires_at=T0 + timedelta(hours=1))
    await ctx.store.sessions.create(ending)
    publisher: SnapshotPublisher = authz.state.publisher

    async def listed_at(moment: timedelta) -> bool:
        clock.now = T0 + moment
        await publisher.refresh()
        assert publisher.latest is not None
        return token_sid(ending.id) in publisher.latest.revoked_sessions

    assert not await listed_at(timedelta(minutes=59))
    assert await listed_at(timedelta(hours=1))  # the instant it ends
    assert await listed_at(timedelta(hours=1) + ENDED_LISTED_FOR - timedelta(seconds=1))
    assert not await listed_at(timedelta(hours=1) + ENDED_LISTED_FOR)


def test_ended_sessions_are_listed_past_feed_max_stale(ctx: AuthzContext) -> None:
    # Default feed_max_stale (5 min): ten minutes. A gateway allowed to serve an hour on its
    # last snapshot must still learn of an end when it reconnects within that hour.
    assert ended_listed_for(ctx) == ENDED_LISTED_FOR
    patient = replace(ctx, settings=ctx.settings.model_copy(update={"feed_max_stale": 3600}))
    assert ended_listed_for(patient) == timedelta(hours=1, minutes=1)


async def test_a_look_without_changes_reads_no_user(ctx: AuthzContext) -> None:
    user, _, session = await signed_in(ctx)
    publisher = SnapshotPublisher(ctx)
    assert await publisher.refresh()  # the first look builds everything
    assert publisher.full_builds == 1
    for _ in range(3):
        assert not await publisher.refresh()
    assert publisher.full_builds == 1  # three looks, three small reads each, no user list
    # A revocation (or a session's end) needs no full build either: the revoked set is read
    # on every look.
    await ctx.store.sessions.revoke(session.id, T0)
    assert await publisher.refresh()
    latest = publisher.latest
    assert latest is not None
    assert token_sid(session.id) in latest.revoked_sessions
    assert user.id in latest.users  # carried over from the last full build
    assert publisher.full_builds == 1


async def test_an_edit_from_another_process_is_seen_at_the_next_look(ctx: AuthzContext) -> None:
    # The CLI writes to the same database from its own process: no event reaches this one,
    # but the change counter moves in the edit's own transaction, and the edited row records
    # the counter's new value, so the next look reads that user alone.
    user, _, _ = await signed_in(ctx)
    crowd = [make_user(name=f"user {n}", email=None) for n in range(30)]
    for person in crowd:
        await ctx.store.users.add(person)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    assert publisher.users_read == 31
    await ctx.store.users.update(user.id, name="Ada King")
    assert await publisher.refresh()
    assert (publisher.full_builds, publisher.users_read) == (1, 32)
    latest = publisher.latest
    assert latest is not None
    assert latest.users[user.id].name == "Ada King"
    assert latest.users[crowd[0].id] is not None
    await ctx.store.users.update(user.id, disabled=True)
    assert await publisher.refresh()
    assert user.id not in publisher.latest.users  # type: ignore[union-attr]
    assert (publisher.full_builds, publisher.users_read) == (1, 33)


async def test_an_incremental_look_agrees_with_a_full_build(ctx: AuthzContext) -> None:
    user, _, _ = await signed_in(ctx)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    assert publisher.latest is not None
    assert not publisher.latest.setup_done
    boss = make_user(name="Boss", is_admin=True)
    await ctx.store.users.add(boss)  # setup is done once an admin exists
    await ctx.store.users.update(user.id, email="ada@elsewhere.test")
    renamed = make_app(slug=AppSlug("wiki"))
    await ctx.store.apps.add(renamed)  # an app write moves the counter too
    assert await publisher.refresh()
    latest = publisher.latest
    assert latest is not None
    assert publisher.full_builds == 1
    full = await build_snapshot(ctx, serial=latest.serial + 1, now=ctx.clock())
    assert latest.same_content(full)
    assert latest.setup_done
    assert latest.users[boss.id].groups == ("admins",)
    assert AppSlug("wiki") in latest.apps_by_slug
    # Nothing moved since: the next look publishes nothing and reads no user.
    read = publisher.users_read
    assert not await publisher.refresh()
    assert publisher.users_read == read


async def test_a_retired_key_leaves_the_snapshot_when_it_stops_verifying(
    ctx: AuthzContext, clock: Clock
) -> None:
    # SECURITY.md 5: a cookie signed by a retired key. The gateway verifies app tokens with
    # the keys of the snapshot, so a key must leave the snapshot once it stops verifying.
    user, app, session = await signed_in(ctx)
    (old,) = await ctx.store.signing_keys.list()
    token = encode_app_token(
        Keyring([old], T0),
        AppTokenClaims(
            iss=ctx.settings.public_url,
            sub=user.id,
            sid=session.id,
            app=app.slug,
            adm=False,
            iat=T0,
            exp=T0 + timedelta(hours=2),
        ),
    )
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    until = T0 + timedelta(hours=1)
    await ctx.store.signing_keys.rotate(generate_signing_key(T0), retired_at=T0, verify_until=until)
    clock.now = until - timedelta(seconds=1)
    assert await publisher.refresh()  # the new key joins; the old one still verifies
    latest = publisher.latest
    assert latest is not None
    assert old.kid in latest.keyring.kids
    verify = partial(verify_app_token, issuer=ctx.settings.public_url, app=app.slug)
    assert verify(latest.keyring, token, now=clock.now).sid == session.id
    clock.now = until
    assert await publisher.refresh()
    latest = publisher.latest
    assert latest is not None
    assert old.kid not in latest.keyring.kids
    with pytest.raises(TokenError) as refused:
        verify(latest.keyring, token, now=clock.now)
    assert refused.value.reason == "unknown_kid"


async def test_a_writer_that_does_not_count_is_caught_by_the_full_rebuild(
    ctx: AuthzContext,
) -> None:
    # An older replica during an upgrade writes without moving the counter.
    user, _, _ = await signed_in(ctx)
    publisher = SnapshotPublisher(ctx, full_every=0.0)
    await publisher.refresh()
    async with ctx.store.engine.begin() as conn:
        await conn.execute(update(users).where(users.c.id == user.id).values(name="Silent"))
    assert await publisher.refresh()
    assert publisher.latest is not None
    assert publisher.latest.users[user.id].name == "Silent"


async def test_snapshot_lists_enabled_users_and_apps(ctx: AuthzContext, authz: FastAPI) -> None:
    user, app, _ = await signed_in(ctx)
    off = make_user(disabled=True, email="off@example.test")
    await ctx.store.users.add(off)
    publisher: SnapshotPublisher = authz.state.publisher
    await publisher.refresh()
    snap = publisher.latest
    assert snap is not None
    assert user.id in snap.users
    assert off.id not in snap.users
    assert app.slug in snap.apps_by_slug
    assert snap.assertion_key is not None
    assert snap.assertion_key.kid not in snap.keyring.kids
    assert not snap.setup_done


async def test_an_apps_request_limits_reach_the_gateways_and_only_when_set(
    ctx: AuthzContext,
) -> None:
    _, app, _ = await signed_in(ctx)
    plain = make_app()
    await ctx.store.apps.add(plain)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    limited = replace(app, max_header_bytes=4096, max_headers=32, idle_timeout=12.5)
    await ctx.store.apps.update(limited)
    assert await publisher.refresh()  # the app write moved the change counter
    latest = publisher.latest
    assert latest is not None
    assert latest.apps_by_slug[app.slug] == limited
    line = snapshot_line(latest)
    sent = {a["slug"]: a for a in json.loads(line)["snapshot"]["apps"]}
    assert [sent[app.slug][k] for k in ("max_header_bytes", "max_headers", "idle_timeout")] == [
        4096,
        32,
        12.5,
    ]
    # An app without them is sent as before, so that a gateway not yet upgraded reads it.
    assert not {"max_header_bytes", "max_headers", "idle_timeout"} & set(sent[plain.slug])
    received = parse_line(line.rstrip(b"\n"))
    assert isinstance(received, ConfigSnapshot)
    assert received.apps_by_slug[app.slug] == limited
    assert received.apps_by_slug[plain.slug] == plain
