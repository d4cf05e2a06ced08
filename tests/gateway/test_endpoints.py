"""The gateway's own endpoints: callback, logout, healthz; and the HTTP authz client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from gateway.fake_authz import FakeAuthz
from gateway.waiting import PATIENCE, eventually
from gateway.world import NAVIGATE, NOW, World
from lychgate.errors import ClientError
from lychgate.gateway.admission import ToEndpoint, admit
from lychgate.gateway.authz_client import AuthzUnavailable, HttpAuthzClient
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.signin_state import state_cookie_name
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import Local, RequestHead, Respond
from lychgate.ids import SessionId, UserId
from lychgate.request_log import NOTE_FIELD, RequestNote
from lychgate.secret import Secret

CODE = "c0de-" + "x" * 38


@dataclass
class FakeAuthzClient:
    """The AuthzClient port, in memory."""

    codes: dict[str, str] = field(default_factory=dict)
    fail: Exception | None = None
    redeemed: list[str] = field(default_factory=list)
    revoked: list[SessionId] = field(default_factory=list)
    users: list[UserId | None] = field(default_factory=list)  # beside each revoked
    rids: list[str] = field(default_factory=list)  # of every call, in order

    async def redeem_code(self, code: str, *, rid: str = "") -> str:
        self.redeemed.append(code)
        self.rids.append(rid)
        if self.fail is not None:
            raise self.fail
        token = self.codes.pop(code, None)
        if token is None:
            raise ClientError("refused", field="code")
        return token

    async def revoke_session(
        self, session_id: SessionId, user_id: UserId | None = None, *, rid: str = ""
    ) -> None:
        self.rids.append(rid)
        if self.fail is not None:
            raise self.fail
        self.revoked.append(session_id)
        self.users.append(user_id)


def setup(world: World, **authz_kw: object) -> tuple[Endpoints, FakeAuthzClient, SnapshotHolder]:
    holder = SnapshotHolder()
    holder.replace(world.snapshot)
    authz = FakeAuthzClient(**authz_kw)  # type: ignore[arg-type]
    return Endpoints(holder, authz, clock=lambda: NOW), authz, holder


async def run(endpoints: Endpoints, world: World, request: RequestHead) -> Respond:
    admission = admit(request, now=NOW, snapshot=world.snapshot, verifier=world.keyring.public)
    assert isinstance(admission, ToEndpoint), admission
    local = endpoints.local(admission)
    assert isinstance(local, Local)
    return await local.endpoint(request)


def header(response: Respond, name: str) -> list[str]:
    return [v for n, v in response.headers if n == name]


SINGLE = World("single-host")
SUBS = World("subdomains")


# -- healthz ------------------------------------------------------------------------------------


async def test_healthz() -> None:
    endpoints, _, _ = setup(SINGLE)
    response = await run(endpoints, SINGLE, SINGLE.head("/.lychgate/healthz"))
    assert (response.status, response.body) == (200, b"ok\n")
    empty = Endpoints(SnapshotHolder(), FakeAuthzClient())
    response = await empty.healthz(SINGLE.head("/.lychgate/healthz"))
    assert (response.status, response.body) == (503, b"unavailable\n")


# -- callback -----------------------------------------------------------------------------------


STATE = "St4te_" + "x" * 20


def callback(
    world: World,
    query: str,
    *,
    headers: tuple[tuple[str, str], ...] = NAVIGATE,
    **kw: object,
) -> RequestHead:
    """A callback from the browser that began the sign-in: its state in the link and cookie."""
    cookie = ("cookie", f"{state_cookie_name(world.snapshot.secure_cookies)}={STATE}")
    target = f"/.lychgate/callback?{query}&state={STATE}"
    return world.head(target, headers=(*headers, cookie), **kw)  # type: ignore[arg-type]


async def test_callback_sets_the_cookie_and_redirects() -> None:
    token = SINGLE.token()
    endpoints, authz, _ = setup(SINGLE, codes={CODE: token})
    response = await run(
        endpoints, SINGLE, callback(SINGLE, f"code={CODE}&rd=/wiki/a/../Page%3Fx%3D1")
    )
    assert response.status == 302
    assert header(response, "location") == ["/wiki/Page?x=1"]
    assert header(response, "set-cookie") == [
        f"lychgate={token}; Path=/; Max-Age=3540; HttpOnly; SameSite=Lax",
        # The sign-in state has done its work.
        "lychgate_state=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; "
        "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    ]
    assert header(response, "cache-control") == ["no-store"]
    assert header(response, "referrer-policy") == ["no-referrer"]
    assert authz.redeemed == [CODE]


async def test_callback_on_an_app_host_sets_the_host_cookie() -> None:
    token = SUBS.token(app="grafana")
    endpoints, _, _ = setup(SUBS, codes={CODE: token})
    request = callback(SUBS, f"code={CODE}", host="metrics.corp.example")
    response = await run(endpoints, SUBS, request)
    assert header(response, "location") == ["/"]
    cookie, state = header(response, "set-cookie")
    assert cookie.startswith(f"__Host-lychgate={token}; Path=/;")
    assert "; Secure" in cookie
    assert state.startswith("__Host-lychgate_state=; Path=/; Max-Age=0;")


async def test_a_token_for_another_app_is_not_stored() -> None:
    endpoints, _, _ = setup(SUBS, codes={CODE: SUBS.token(app="wiki")})
    request = callback(SUBS, f"code={CODE}", host="metrics.corp.example")
    response = await run(endpoints, SUBS, request)
    assert response.status == 400
    assert header(response, "set-cookie") == []


@pytest.mark.parametrize(
    "token_kw",
    [
        {"issued": NOW - timedelta(hours=2)},
        {"sid": "revoked-sess"},
        {"app": "old"},
        {"sub": "ghost"},
    ],
)
async def test_a_token_that_would_not_be_admitted_is_not_stored(
    token_kw: dict[str, object],
) -> None:
    endpoints, _, _ = setup(SINGLE, codes={CODE: SINGLE.token(**token_kw)})  # type: ignore[arg-type]
    response = await run(endpoints, SINGLE, callback(SINGLE, f"code={CODE}"))
    assert response.status == 400
    assert header(response, "set-cookie") == []


REDIRECT_TRICKS = [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "/%09/evil.example",
    "https:evil.example",
    "http://localhost:8080/",
    "https://localhost:8080.evil.example/",
    "https://localhost:8080@evil.example/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,x",
    "/%0d%0aSet-Cookie:x=1",
    "%2F%2Fevil.example",
    "https://xn--lcalhost-9za/",
    "http://localhost:8081/",
    # The gateway's and authz's own paths: authz never sends one back as rd.
    "/.lychgate/logout",
    "/.LYCHGATE/internal/feed",
    "/%2Elychgate/logout",
    "/.lychgate",
]


@pytest.mark.parametrize("rd", REDIRECT_TRICKS)
async def test_a_refused_rd_spends_no_code_and_sets_no_cookie(rd: str) -> None:
    endpoints, authz, _ = setup(SINGLE, codes={CODE: SINGLE.token()})
    query = f"code={CODE}&rd={_quote(rd)}"
    response = await run(endpoints, SINGLE, callback(SINGLE, query))
    assert response.status == 302
    assert header(response, "location") == ["/"]
    assert header(response, "set-cookie") == []
    assert authz.redeemed == []


def _quote(value: str) -> str:
    return "".join(
        c if c.isalnum() or c in "-._~" else f"%{b:02X}" for c in value for b in c.encode()
    )


@pytest.mark.parametrize(
    "query",
    [
        "",
        "rd=/",
        "code=",
        "code=short",
        f"code={CODE}&code={CODE}",
        f"code={CODE}&rd=/a&rd=/b",
        f"code={CODE}!",
        f"code={CODE}%00",
        f"code={CODE}&rd=%ff",
        "&".join(f"k{i}=v" for i in range(20)),
        "code=" + "a" * 300,
    ],
)
async def test_malformed_callbacks_are_400(query: str) -> None:
    endpoints, authz, _ = setup(SINGLE, codes={CODE: SINGLE.token()})
    response = await run(endpoints, SINGLE, callback(SINGLE, query))
    assert response.status == 400
    assert header(response, "set-cookie") == []
    assert authz.redeemed == []


async def test_a_refused_code_is_400() -> None:
    endpoints, authz, _ = setup(SINGLE)
    response = await run(endpoints, SINGLE, callback(SINGLE, f"code={CODE}"))
    assert response.status == 400
    assert header(response, "set-cookie") == []
    assert authz.redeemed == [CODE]


async def test_authz_down_is_502_without_details() -> None:
    endpoints, _, _ = setup(SINGLE, fail=AuthzUnavailable("connect to /run/authz.sock failed"))
    response = await run(endpoints, SINGLE, callback(SINGLE, f"code={CODE}"))
    assert response.status == 502
    assert b"authz.sock" not in response.body
    assert header(response, "set-cookie") == []


async def test_an_endpoints_refusal_shows_the_request_id() -> None:
    rid = "5b1e0c9a7d2f4e8b3a6c1d0e"
    request = replace(callback(SINGLE, f"code={CODE}"), rid=rid)
    endpoints, _, _ = setup(SINGLE, fail=AuthzUnavailable("connect to /run/authz.sock failed"))
    down = await run(endpoints, SINGLE, request)
    endpoints, _, _ = setup(SINGLE)
    refused = await run(endpoints, SINGLE, request)
    assert (down.status, down.body) == (
        502,
        b"sign-in is unavailable, try again\nrequest id: %s\n" % rid.encode(),
    )
    assert refused.status == 400
    assert refused.body.endswith(b"\nrequest id: %s\n" % rid.encode())


async def test_the_calls_to_authz_carry_the_browser_requests_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rid = "5b1e0c9a7d2f4e8b3a6c1d0e"
    endpoints, authz, _ = setup(SINGLE, codes={CODE: SINGLE.token()})
    assert (
        await run(endpoints, SINGLE, replace(callback(SINGLE, f"code={CODE}"), rid=rid))
    ).status == 302
    # A callback whose state is not this browser's spends its code, named as well.
    stray = SINGLE.head(f"/.lychgate/callback?code={CODE}&state={STATE}", headers=NAVIGATE)
    await run(endpoints, SINGLE, replace(stray, rid="0" * 24))
    logout = SINGLE.head("/.lychgate/logout", cookies=[SINGLE.token(sid="s1")])
    await run(endpoints, SINGLE, replace(logout, rid="1" * 24))
    assert authz.rids == [rid, "0" * 24, "1" * 24]
    # The endpoint's own log lines name it too (as the commands' stderr shows them).
    endpoints, _, _ = setup(SINGLE, fail=AuthzUnavailable("connect to /run/authz.sock failed"))
    caplog.handler.addFilter(RequestNote())
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.endpoints"):
        await run(endpoints, SINGLE, replace(callback(SINGLE, f"code={CODE}"), rid=rid))
    [record] = caplog.records
    assert record.getMessage() == "callback: code redemption failed: AuthzUnavailable"
    assert getattr(record, NOTE_FIELD) == f" (request {rid})"


async def test_callback_only_answers_get() -> None:
    endpoints, authz, _ = setup(SINGLE, codes={CODE: SINGLE.token()})
    response = await run(endpoints, SINGLE, callback(SINGLE, f"code={CODE}", method="POST"))
    assert response.status == 405
    assert authz.redeemed == []


async def test_callback_without_a_snapshot_is_503() -> None:
    endpoints = Endpoints(SnapshotHolder(), FakeAuthzClient(), clock=lambda: NOW)
    request = callback(SINGLE, f"code={CODE}")
    admission = admit(request, now=NOW, snapshot=SINGLE.snapshot, verifier=SINGLE.keyring.public)
    assert isinstance(admission, ToEndpoint)
    response = await endpoints.callback(request, admission)
    assert response.status == 503


# -- logout -------------------------------------------------------------------------------------


async def test_logout_revokes_clears_and_redirects() -> None:
    endpoints, authz, _ = setup(SINGLE)
    request = SINGLE.head("/.lychgate/logout", cookies=[SINGLE.token(sid="s1"), "junk"])
    response = await run(endpoints, SINGLE, request)
    assert response.status == 302
    assert header(response, "location") == ["/"]
    cookie, session = header(response, "set-cookie")
    assert cookie.startswith("lychgate=; Path=/; Max-Age=0")
    assert session.startswith("lychgate_session=; Path=/; Max-Age=0")
    assert authz.revoked == ["s1"]
    assert authz.users == ["user-1"]  # authz finds the session the handle names among its own


async def test_logout_ends_the_session_a_token_from_before_names_by_id() -> None:
    # Its sid is the session's id (tokens signed before handles): refused for requests, but
    # its session must still end; authz takes the id as it takes a sign-in cookie's value.
    endpoints, authz, _ = setup(SINGLE)
    legacy = SINGLE.token(sid="ses_AAAAAAAAAAAAAAAAAAAAAA")
    response = await run(endpoints, SINGLE, SINGLE.head("/.lychgate/logout", cookies=[legacy]))
    assert response.status == 302
    assert (authz.revoked, authz.users) == (["ses_AAAAAAAAAAAAAAAAAAAAAA"], [None])


async def test_logout_also_ends_the_portal_session() -> None:
    """Signed in but no app opened yet: only authz's session cookie names the session."""
    endpoints, authz, _ = setup(SINGLE)
    for value in ("lychgate_session=bad\\value", "lychgate_session=x"):
        bad = SINGLE.head("/.lychgate/logout", headers=(("cookie", value),))
        assert (await run(endpoints, SINGLE, bad)).status == 302
    assert authz.revoked == []
    request = SINGLE.head(
        "/.lychgate/logout",
        cookies=[SINGLE.token(sid="s1")],
        headers=(("cookie", "lychgate_session=" + "S" * 22),),
    )
    response = await run(endpoints, SINGLE, request)
    assert response.status == 302
    assert sorted(authz.revoked) == sorted(["s1", "S" * 22])
    assert dict(zip(authz.revoked, authz.users, strict=True)) == {"s1": "user-1", "S" * 22: None}


async def test_logout_on_https_clears_the_host_cookie() -> None:
    endpoints, authz, _ = setup(SUBS)
    request = SUBS.head("/.lychgate/logout", method="POST", cookies=[SUBS.token(sid="s2")])
    response = await run(endpoints, SUBS, request)
    cookie, session = header(response, "set-cookie")
    assert cookie.startswith("__Host-lychgate=; Path=/; Max-Age=0")
    assert "Secure" in cookie
    assert session.startswith("__Host-lychgate_session=; Path=/; Max-Age=0")
    assert authz.revoked == ["s2"]


async def test_logout_with_garbage_only_clears() -> None:
    endpoints, authz, _ = setup(SINGLE)
    response = await run(endpoints, SINGLE, SINGLE.head("/.lychgate/logout", cookies=["x.y.z"]))
    assert response.status == 302
    assert authz.revoked == []


async def test_cross_site_logout_is_refused() -> None:
    endpoints, authz, _ = setup(SINGLE)
    request = SINGLE.head(
        "/.lychgate/logout",
        cookies=[SINGLE.token()],
        headers=(("sec-fetch-site", "cross-site"),),
    )
    response = await run(endpoints, SINGLE, request)
    assert response.status == 403
    assert header(response, "set-cookie") == []
    assert authz.revoked == []


OWN_ORIGIN = SINGLE.snapshot.origin_for("localhost")
BROWSER_LINK = (("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "document"))


@pytest.mark.parametrize(
    ("method", "fields", "status"),
    [
        ("GET", (("sec-fetch-site", "same-site"), ("sec-fetch-dest", "document")), 403),
        ("GET", (("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "image")), 403),
        ("GET", (("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "empty")), 403),
        ("POST", (("origin", "https://evil.example"),), 403),  # a form elsewhere, old browser
        ("POST", (("origin", "null"),), 403),
        ("POST", (("origin", OWN_ORIGIN), ("origin", "https://evil.example")), 403),
        ("GET", BROWSER_LINK, 302),
        ("GET", (("sec-fetch-site", "none"), ("sec-fetch-dest", "document")), 302),  # typed
        ("POST", (*BROWSER_LINK, ("origin", OWN_ORIGIN)), 302),  # the app's own form
        ("GET", (), 302),  # a script, or a browser that says nothing
    ],
    ids=[
        "sibling",
        "img",
        "fetch",
        "foreign origin",
        "null origin",
        "two origins",
        "link",
        "typed",
        "form",
        "no fields",
    ],
)
async def test_only_this_origins_pages_sign_out(
    method: str, fields: tuple[tuple[str, str], ...], status: int
) -> None:
    endpoints, authz, _ = setup(SINGLE)
    request = SINGLE.head(
        "/.lychgate/logout", method=method, cookies=[SINGLE.token()], headers=fields
    )
    response = await run(endpoints, SINGLE, request)
    assert response.status == status
    if status == 403:
        assert header(response, "set-cookie") == []
        assert authz.revoked == []
    else:
        assert len(authz.revoked) == 1


@pytest.mark.parametrize(
    ("world", "fields", "status"),
    [
        # A link from another site into an app leads here through login, start and open, and
        # the browser calls the whole chain cross-site: the sign-in state (in the link and
        # the cookie) is what tells this browser's sign-in from a planted one, in both modes.
        (SINGLE, (("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "document")), 302),
        (SINGLE, (("sec-fetch-site", "same-site"), ("sec-fetch-dest", "document")), 302),
        (SINGLE, (("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "image")), 403),
        (SINGLE, BROWSER_LINK, 302),  # the sign-in page's own navigation
        (SUBS, (("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "document")), 302),
        (SUBS, (("sec-fetch-site", "same-site"), ("sec-fetch-dest", "iframe")), 403),
    ],
    ids=["cross-site", "same-site", "img", "same-origin", "subdomains", "subdomains iframe"],
)
async def test_a_code_is_taken_only_from_a_navigation_that_may_bring_one(
    world: World, fields: tuple[tuple[str, str], ...], status: int
) -> None:
    # Only a navigation may bring a code (test_signin_state holds the login CSRF rule). A
    # refused callback spends no code and sets no cookie.
    app = "grafana" if world is SUBS else None
    token = world.token(app=app) if app else world.token()
    endpoints, authz, _ = setup(world, codes={CODE: token})
    host = "metrics.corp.example" if world is SUBS else None
    request = callback(world, f"code={CODE}", host=host, headers=fields)
    response = await run(endpoints, world, request)
    assert response.status == status
    if status == 403:
        assert authz.redeemed == []
        assert header(response, "set-cookie") == []


async def test_logout_when_authz_is_down_keeps_the_cookies_for_a_retry() -> None:
    # Clearing them left the session alive at authz and the retry nothing to revoke: it then
    # redirected as a sign-out that worked.
    endpoints, _, _ = setup(SINGLE, fail=AuthzUnavailable("down"))
    request = SINGLE.head("/.lychgate/logout", cookies=[SINGLE.token()])
    response = await run(endpoints, SINGLE, request)
    assert response.status == 502
    assert b"still signed in" in response.body
    assert header(response, "set-cookie") == []
    endpoints, authz, _ = setup(SINGLE)  # authz is back: the same browser tries again
    retried = await run(endpoints, SINGLE, request)
    assert retried.status == 302
    assert authz.revoked
    assert header(retried, "set-cookie")[0].startswith("lychgate=; ")


async def test_logout_methods() -> None:
    endpoints, _, _ = setup(SINGLE)
    response = await run(endpoints, SINGLE, SINGLE.head("/.lychgate/logout", method="PUT"))
    assert response.status == 405


class ExplodingHolder:
    @property
    def current(self) -> None:
        raise RuntimeError("secret internals")


async def test_an_endpoint_crash_is_a_quiet_500() -> None:
    endpoints = Endpoints(cast(SnapshotHolder, ExplodingHolder()), FakeAuthzClient())
    request = SINGLE.head("/.lychgate/healthz")
    admission = admit(request, now=NOW, snapshot=SINGLE.snapshot, verifier=SINGLE.keyring.public)
    assert isinstance(admission, ToEndpoint)
    response = await endpoints.local(admission).endpoint(request)
    assert response.status == 500
    assert b"secret" not in response.body


# -- the HTTP client, over a real unix socket ---------------------------------------------------


@pytest.fixture
async def fake_authz(tmp_path: Path) -> AsyncIterator[tuple[FakeAuthz, str]]:
    server = FakeAuthz()
    base = await server.start_unix(tmp_path / "authz.sock")
    yield server, base
    await server.stop()


@pytest.mark.loopback
async def test_http_client_redeems_and_revokes(fake_authz: tuple[FakeAuthz, str]) -> None:
    server, base = fake_authz
    server.codes[CODE] = "tok.en.sig"
    client = HttpAuthzClient(base, Secret(server.secret))
    try:
        assert await client.redeem_code(CODE, rid="5b1e0c9a7d2f4e8b3a6c1d0e") == "tok.en.sig"
        with pytest.raises(ClientError):
            await client.redeem_code(CODE)  # once only
        await client.revoke_session(SessionId("s1"), rid="uuid-like-id")
        assert server.revoked == ["s1"]
        assert set(server.auth_headers) == {f"Bearer {server.secret}"}
        # Each call is named by the browser request it serves, or by nothing.
        assert server.request_ids == ["5b1e0c9a7d2f4e8b3a6c1d0e", "", "uuid-like-id"]
        server.status_override = 503
        with pytest.raises(AuthzUnavailable):
            await client.redeem_code(CODE)
        with pytest.raises(AuthzUnavailable):
            await client.revoke_session(SessionId("s1"))
    finally:
        await client.aclose()


@pytest.mark.loopback
async def test_http_client_with_a_wrong_secret_is_unavailable_not_a_client_error(
    fake_authz: tuple[FakeAuthz, str],
) -> None:
    _, base = fake_authz
    client = HttpAuthzClient(base, Secret("wrong"))
    try:
        with pytest.raises(AuthzUnavailable):
            await client.redeem_code(CODE)
    finally:
        await client.aclose()


@pytest.mark.loopback
async def test_http_client_when_nothing_listens(tmp_path: Path) -> None:
    client = HttpAuthzClient(f"unix:{tmp_path}/missing.sock", Secret("s"), timeout=1.0)
    try:
        with pytest.raises(AuthzUnavailable):
            await client.redeem_code(CODE)
    finally:
        await client.aclose()


@pytest.mark.loopback
async def test_a_call_whose_caller_left_still_runs_to_its_end(
    fake_authz: tuple[FakeAuthz, str],
) -> None:
    # A client that leaves during /.lychgate/logout or /callback cancels the endpoint. The
    # call to authz used to be cancelled with it, and httpx's pool kept a connection caught
    # between connecting and sending, for good: after a hundred, every sign-in and logout
    # timed out waiting for the pool. Now each call ends on its own: a logout still revokes.
    server, base = fake_authz
    # Calls go out faster than a worker allows for long: this is about the pool, not the rate.
    client = HttpAuthzClient(base, Secret(server.secret), timeout=PATIENCE, max_rate=10_000)
    started: list[str] = []
    try:
        for round_ in range(30):
            sids = [f"s{round_}-{i}" for i in range(10)]
            started += sids
            callers = [asyncio.ensure_future(client.revoke_session(SessionId(s))) for s in sids]
            await asyncio.sleep(round_ % 11 * 0.0005)  # at every stage of the calls
            for caller in callers:
                caller.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            # Calls in flight are capped (a client over it is refused): each round in turn.
            await eventually(lambda: client.in_flight == 0)
        assert sorted(server.revoked) == sorted(started)
        server.codes[CODE] = "tok.en.sig"
        # With the pool clogged, this waited for a connection until the client's timeout.
        assert await client.redeem_code(CODE) == "tok.en.sig"
    finally:
        await client.aclose()


@pytest.mark.loopback
async def test_closing_the_client_lets_calls_in_flight_finish(
    fake_authz: tuple[FakeAuthz, str],
) -> None:
    server, base = fake_authz
    client = HttpAuthzClient(base, Secret(server.secret))
    caller = asyncio.ensure_future(client.revoke_session(SessionId("s-last")))
    await asyncio.sleep(0)
    caller.cancel()
    await client.aclose()
    assert server.revoked == ["s-last"]
    assert client.in_flight == 0
