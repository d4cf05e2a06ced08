"""The browser's login API (docs/sign-in-protocol.md), in process, over both store backends."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from authz.conftest import Clock
from authz.login_fixtures import (
    API,
    JSON,
    approve,
    approved,
    browser,
    deny,
    enrolled,
    finish,
    other_browser,
    set_cookies,
    start,
)
from fixtures.store import T0
from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.domain import LoginStatus
from lychgate.gateway.trusted_proxies import chain_client
from lychgate.ids import LoginRequestId

__all__ = ["browser", "other_browser"]  # fixtures used by name


async def test_create_answers_the_contract_and_binds_the_browser(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    r = await browser.post(API, json={"rd": "/"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "login_url", "number", "expires_at"}
    assert 10 <= body["number"] <= 99
    assert body["login_url"] == f"{ctx.settings.public_url}/.lychgate/d/login/{body['id']}"
    assert datetime.fromisoformat(body["expires_at"]) == T0 + timedelta(seconds=120)
    cookie = set_cookies(r)["lychgate_login"]
    for attribute in ("HttpOnly", "Path=/.lychgate/", "Max-Age=120", "SameSite=lax"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain-http loopback public URL
    secret = cookie.split(";")[0].split("=", 1)[1]
    stored = await ctx.store.login_requests.get(LoginRequestId(body["id"]))
    assert stored.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert stored.number == body["number"]
    assert stored.status is LoginStatus.PENDING
    assert [e.action for e in await ctx.store.audit.list()] == ["login.requested"]


async def test_numbers_are_two_digits(browser: httpx.AsyncClient) -> None:
    numbers = {(await start(browser))["number"] for _ in range(15)}
    assert all(10 <= n <= 99 for n in numbers)
    assert len(numbers) > 1


async def test_status_needs_the_binding_cookie(
    browser: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    created = await start(browser)
    mine = await browser.get(f"{API}/{created['id']}")
    assert mine.json() == {"status": "pending"}
    theirs = await other_browser.get(f"{API}/{created['id']}")
    await start(other_browser)  # a binding cookie of its own does not help either
    theirs_bound = await other_browser.get(f"{API}/{created['id']}")
    unknown = await browser.get(f"{API}/lr_doesnotexist")
    too_long = await browser.get(f"{API}/{'x' * 300}")
    nul = await browser.get(f"{API}/lr_%00")
    for r in (theirs, theirs_bound, unknown, too_long, nul):
        assert r.status_code == 404
        assert r.json() == {"detail": "not_found"}  # the same answer: no oracle


async def test_an_expired_request_reads_as_expired(
    browser: httpx.AsyncClient, clock: Clock
) -> None:
    created = await start(browser)
    clock.now = T0 + timedelta(seconds=119)
    assert (await browser.get(f"{API}/{created['id']}")).json() == {"status": "pending"}
    clock.now = T0 + timedelta(seconds=120)
    assert (await browser.get(f"{API}/{created['id']}")).json() == {"status": "expired"}


async def test_finish_makes_a_session_and_sends_the_browser_to_the_portal(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    person, login_id = await approved(ctx, browser)
    assert (await browser.get(f"{API}/{login_id}")).json() == {"status": "approved"}
    r = await finish(browser, login_id)
    assert r.status_code == 200
    assert r.json() == {"redirect": "/.lychgate/"}
    cookies = set_cookies(r)
    session_cookie = cookies["lychgate_session"]
    for attribute in ("HttpOnly", "Path=/", "SameSite=lax", f"Max-Age={ctx.settings.session_ttl}"):
        assert attribute in session_cookie
    assert "Max-Age=0" in cookies["lychgate_login"]  # the binding cookie is cleared
    sid = session_cookie.split(";")[0].split("=", 1)[1]
    login = await ctx.store.login_requests.get(LoginRequestId(login_id))
    assert login.status is LoginStatus.FINISHED
    assert login.session_id == sid
    session = await ctx.store.sessions.get(login.session_id)
    assert (session.user_id, session.device_id) == (person.user.id, person.device.id)
    assert session.expires_at == T0 + timedelta(seconds=ctx.settings.session_ttl)
    assert session.ip == "127.0.0.1"
    assert session.user_agent.startswith("python-httpx")
    actions = [e.action for e in await ctx.store.audit.list(action_prefix="login.")]
    assert actions == ["login.finished", "login.requested"]
    finished = (await ctx.store.audit.list(action_prefix="login.finished"))[0]
    assert (finished.actor_user_id, finished.actor_device_id) == (person.user.id, person.device.id)


async def test_a_second_finish_fails(ctx: AuthzContext, browser: httpx.AsyncClient) -> None:
    person = await enrolled(ctx)
    created = await start(browser)
    binding = browser.cookies["lychgate_login"]
    await approve(ctx, created["id"], person)
    assert (await finish(browser, created["id"])).status_code == 200
    # Replay with the (now cleared) binding cookie, as a script holding it would.
    replay = await browser.post(
        f"{API}/{created['id']}/finish",
        json={},
        headers={"cookie": f"lychgate_login={binding}"},
    )
    assert replay.status_code == 409
    assert replay.json()["detail"] == "already_finished"  # the page reloads on it
    sessions = await ctx.store.sessions.list_for_user(person.user.id, live_at=ctx.clock())
    assert len(sessions) == 1


async def test_concurrent_finishes_make_one_session(
    ctx: AuthzContext, browser: httpx.AsyncClient
) -> None:
    person, login_id = await approved(ctx, browser)
    results = await asyncio.gather(*(finish(browser, login_id) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [200, 409, 409]
    losers = [r.json()["detail"] for r in results if r.status_code == 409]
    assert losers == ["already_finished", "already_finished"]
    live = await ctx.store.sessions.list_for_user(person.user.id, live_at=ctx.clock())
    assert len(live) == 1


async def test_another_browser_cannot_finish(
    ctx: AuthzContext, browser: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    _, login_id = await approved(ctx, browser)
    assert (await finish(other_browser, login_id)).status_code == 404
    await start(other_browser)
    assert (await finish(other_browser, login_id)).status_code == 404
    assert "lychgate_session" not in other_browser.cookies
    assert (await finish(browser, login_id)).status_code == 200


@pytest.mark.parametrize("state", ["pending", "denied", "expired", "approved-then-expired"])
async def test_only_an_approved_live_request_finishes(
    ctx: AuthzContext, browser: httpx.AsyncClient, clock: Clock, state: str
) -> None:
    person = await enrolled(ctx)
    created = await start(browser)
    if state == "denied":
        await deny(ctx, created["id"])
    elif state == "expired":
        clock.now = T0 + timedelta(seconds=121)
    elif state == "approved-then-expired":
        await approve(ctx, created["id"], person)
        clock.now = T0 + timedelta(seconds=121)
    r = await finish(browser, created["id"])
    assert r.status_code == 409
    assert r.json()["detail"] == "not_approved"
    assert "lychgate_session" not in browser.cookies
    assert await ctx.store.sessions.list_for_user(person.user.id) == []


# -- rate limits and whose forwarding headers count (SECURITY.md items 3 and 7) -------------

GATEWAY = "127.0.0.1"  # a gateway on the same host: trusted by default
STRANGER = "203.0.113.9"  # a TCP peer that is no gateway
CLIENT = "198.51.100.7"  # the browser, as a gateway reports it
ALT = "http://alt.localhost:8080"  # the origin the browser used, as a gateway reports it
VIA_ALT = {"x-forwarded-host": "alt.localhost:8080", "x-forwarded-proto": "http"}


def over_unix_socket(app: ASGIApp) -> ASGIApp:
    """``app`` as uvicorn runs it on a unix socket: the ASGI scope's ``client`` is None."""

    async def unix_peer(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": None}, receive, send)

    return unix_peer


def from_peer(authz: FastAPI, ctx: AuthzContext, peer: str | None) -> httpx.AsyncClient:
    """A client whose requests reach authz from TCP peer ``peer``, or over the unix socket."""
    transport = (
        httpx.ASGITransport(app=over_unix_socket(authz))
        if peer is None
        else httpx.ASGITransport(app=authz, client=(peer, 40000))
    )
    return httpx.AsyncClient(transport=transport, base_url=ctx.settings.public_url)


async def seen_by_authz(authz: FastAPI, ctx: AuthzContext, peer: str | None) -> tuple[str, int]:
    """What authz makes of forwarding headers from ``peer``: the client IP it records for a
    login sent with ``X-Forwarded-For: CLIENT``, and the status of a POST whose ``Origin`` is
    ours only if ``X-Forwarded-Host``/``-Proto`` are believed (403 when they are not)."""
    async with from_peer(authz, ctx, peer) as c:
        assert (await c.post(API, json={}, headers={"x-forwarded-for": CLIENT})).status_code == 201
        latest = (await ctx.store.audit.list(action_prefix="login.requested"))[0]
        assert latest.ip is not None
        r = await c.post(API, json={}, headers={**VIA_ALT, "origin": ALT})
    return latest.ip, r.status_code


async def test_a_flood_is_rate_limited_per_client_ip(authz: FastAPI, ctx: AuthzContext) -> None:
    async with from_peer(authz, ctx, GATEWAY) as gateway:
        for _ in range(20):
            r = await gateway.post(API, json={}, headers={"x-forwarded-for": CLIENT})
            assert r.status_code == 201
        r = await gateway.post(API, json={}, headers={"x-forwarded-for": CLIENT})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert "lychgate_login" not in r.headers.get("set-cookie", "")
        other = await gateway.post(API, json={}, headers={"x-forwarded-for": "192.0.2.7"})
        assert other.status_code == 201


async def test_an_ipv6_client_is_limited_by_its_64(authz: FastAPI, ctx: AuthzContext) -> None:
    # One host is commonly given a whole /64: a new address per request must not be a new
    # client (the gateway's connection cap counts the same way).
    async with from_peer(authz, ctx, GATEWAY) as gateway:
        for i in range(20):
            client = f"2001:db8:1:2::{i + 1:x}"
            r = await gateway.post(API, json={}, headers={"x-forwarded-for": client})
            assert r.status_code == 201
        r = await gateway.post(API, json={}, headers={"x-forwarded-for": "2001:db8:1:2:ffff::9"})
        assert r.status_code == 429
        r = await gateway.post(API, json={}, headers={"x-forwarded-for": "2001:db8:1:3::1"})
        assert r.status_code == 201  # the next /64 is someone else


async def test_a_peer_that_is_no_gateway_cannot_pick_its_rate_limit_key(
    authz: FastAPI, ctx: AuthzContext
) -> None:
    async with from_peer(authz, ctx, STRANGER) as stranger:
        for i in range(20):
            r = await stranger.post(API, json={}, headers={"x-forwarded-for": f"192.0.2.{i}"})
            assert r.status_code == 201
        r = await stranger.post(API, json={}, headers={"x-forwarded-for": "192.0.2.99"})
        assert r.status_code == 429
    assert {e.ip for e in await ctx.store.audit.list(action_prefix="login.")} == {STRANGER}
    async with from_peer(authz, ctx, "203.0.113.10") as neighbour:
        assert (await neighbour.post(API, json={})).status_code == 201


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (None, True),  # the unix socket: only the gateway can connect
        (GATEWAY, True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # a dual-stack listener's view of 127.0.0.1
        (STRANGER, False),
        ("10.1.2.3", False),
        ("::ffff:203.0.113.9", False),
        ("2001:db8::1", False),
    ],
)
async def test_forwarding_headers_count_only_from_a_gateway(
    authz: FastAPI, ctx: AuthzContext, peer: str | None, trusted: bool
) -> None:
    ip, alt_origin_status = await seen_by_authz(authz, ctx, peer)
    if trusted:
        assert (ip, alt_origin_status) == (CLIENT, 201)
    else:
        assert (ip, alt_origin_status) == (peer, 403)  # the peer; the public URL's origin


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("192.0.2.7", "192.0.2.7"),  # no proxy: the gateway's peer
        ("6.6.6.6, 192.0.2.7", "192.0.2.7"),  # a client-written entry is never believed
        ("6.6.6.6, 192.0.2.7, 10.0.0.5", "192.0.2.7"),  # behind a trusted proxy
        ("6.6.6.6, 192.0.2.7, 10.0.0.5, 10.0.0.6", "192.0.2.7"),  # two of them
        ("not-an-ip, 10.0.0.5", "not-an-ip"),
        ("10.0.0.9, 10.0.0.5", "10.0.0.9"),  # all trusted: the left-most
    ],
)
def test_the_client_is_the_right_most_untrusted_entry(chain: str, client: str) -> None:
    """SECURITY.md item 3: behind trusted proxies that append to what the client sent, the
    client cannot choose its own rate-limit key by writing X-Forwarded-For itself."""
    assert chain_client(chain, (ipaddress.ip_network("10.0.0.0/8"),)) == client


async def test_configured_gateways_replace_the_loopback_default(ctx: AuthzContext) -> None:
    gateways = (ipaddress.ip_network("10.0.0.0/8"),)
    settings = ctx.settings.model_copy(update={"authz_trusted_gateways": gateways})
    authz = create_app(dataclasses.replace(ctx, settings=settings))
    async with authz.router.lifespan_context(authz):
        assert await seen_by_authz(authz, ctx, "10.1.2.3") == (CLIENT, 201)
        assert await seen_by_authz(authz, ctx, GATEWAY) == (GATEWAY, 403)
        assert await seen_by_authz(authz, ctx, None) == (CLIENT, 201)


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://localhost:8081"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
async def test_cross_site_posts_are_refused(
    ctx: AuthzContext, browser: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    _, login_id = await approved(ctx, browser)
    assert (await browser.post(API, json={}, headers=headers)).status_code == 403
    r = await browser.post(f"{API}/{login_id}/finish", json={}, headers=headers)
    assert r.status_code == 403
    assert "lychgate_session" not in browser.cookies


async def test_posts_need_json(ctx: AuthzContext, browser: httpx.AsyncClient) -> None:
    _, login_id = await approved(ctx, browser)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {} if content_type is None else {"content-type": content_type}
        r = await browser.post(f"{API}/{login_id}/finish", content=b"{}", headers=headers)
        assert r.status_code == 415
        assert (await browser.post(API, content=b"{}", headers=headers)).status_code == 415
    same_origin = {"origin": ctx.settings.public_url, "sec-fetch-site": "same-origin", **JSON}
    r = await browser.post(f"{API}/{login_id}/finish", content=b"", headers=same_origin)
    assert r.status_code == 200


async def test_events_need_the_cookie_and_our_origin(
    browser: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    created = await start(browser)
    events = f"{API}/{created['id']}/events"
    assert (await other_browser.get(events)).status_code == 404
    foreign = await browser.get(events, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    cross = await browser.get(events, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403


async def test_the_qr_code_of_a_request(
    ctx: AuthzContext, browser: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    created = await start(browser)
    r = await browser.get(f"{API}/{created['id']}/qr.svg")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/svg+xml"
    assert r.text.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert (await other_browser.get(f"{API}/{created['id']}/qr.svg")).status_code == 404


async def test_the_openapi_document_describes_the_api(authz: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=authz), base_url="http://localhost:8080"
    ) as c:
        doc = (await c.get("/.lychgate/openapi.json")).json()
        # No viewer page: FastAPI's loaded an unpinned script from a CDN onto this origin.
        assert (await c.get("/.lychgate/docs")).status_code == 404
    paths = doc["paths"]
    assert {"post"} <= set(paths[API])
    assert {"get"} <= set(paths[API + "/{login_id}"])
    assert (
        "text/event-stream"
        in paths[API + "/{login_id}/events"]["get"]["responses"]["200"]["content"]
    )
    assert "post" in paths[API + "/{login_id}/finish"]
    assert {"get"} <= set(paths["/.lychgate/api/v1/sessions"])
    assert "delete" in paths["/.lychgate/api/v1/sessions/{handle}"]
    schemas = doc["components"]["schemas"]
    for name in ("LoginIn", "LoginCreated", "LoginStatusOut", "RedirectOut", "SessionsOut"):
        assert name in schemas
    assert set(schemas["LoginCreated"]["properties"]) == {"id", "login_url", "number", "expires_at"}
    assert "/.lychgate/login" not in paths  # HTML pages stay out of the API document
