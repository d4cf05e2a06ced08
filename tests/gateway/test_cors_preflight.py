"""CORS preflights to an app that allows cross-origin requests reach it without a token.

A browser never sends the cookie with a preflight (Fetch standard: "a CORS-preflight request
never includes credentials"), so an app with ``allow_cross_origin`` could never answer one: the
gateway refused it 401 and the browser then refused the real PUT or DELETE. Such an app now
gets the preflight anonymously (no token looked at, no identity sent); every other app, and
everything that is not exactly a browser's preflight, is decided as before. Admission steps 4a
and 8 (:mod:`lychgate.gateway.admit_origin`); the last test goes through the real engine.
"""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from gateway.conftest import Connect, Start
from gateway.upstreams import Reply, Seen, http_upstream
from gateway.world import APPS, FETCH, NOW, World, handler_for, make_app
from lychgate.gateway.admission import (
    Admission,
    Deny,
    Preflight,
    ToApp,
    ToAuthz,
    ToEndpoint,
    admit,
)
from lychgate.gateway.admit_memo import AdmissionMemo
from lychgate.gateway.cookies import drop_lychgate_set_cookies
from lychgate.gateway.paths import RequestTarget
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.types import Forward, RequestHead, Respond
from lychgate.tokens import CachedVerifier

API = make_app("api", allow_cross_origin=True)
OPEN = World("subdomains", apps=(*APPS, API))  # api.example.com takes cross-origin requests
SUBS = World("subdomains")
SIBLING: Final = "https://wiki.example.com"
ASK: Final = (
    ("origin", SIBLING),
    ("access-control-request-method", "PUT"),
    ("access-control-request-headers", "content-type"),
    ("accept", "*/*"),
    ("sec-fetch-mode", "cors"),
)


def preflight(
    world: World = OPEN,
    *fields: tuple[str, str],
    target: str = "/items/7",
    host: str = "api.example.com",
    method: str = "OPTIONS",
    cookies: list[str] | None = None,
) -> RequestHead:
    return world.head(
        target, method=method, host=host, cookies=cookies, headers=fields if fields else ASK
    )


def decide(world: World, head: RequestHead, **kw: Any) -> Admission:
    """Admit ``head`` without a memo, and twice through one: the same decision each time."""
    snapshot = kw.pop("snapshot", world.snapshot)
    verifier = CachedVerifier(world.keyring.public)
    plain = admit(head, now=NOW, snapshot=snapshot, verifier=verifier)
    memo = AdmissionMemo()
    for _ in range(2):
        assert admit(head, now=NOW, snapshot=snapshot, verifier=verifier, memo=memo) == plain
    return plain


def no_cookie(result: Admission) -> bool:
    """Refused as any cookieless script is: a 401 naming the login page."""
    return isinstance(result, Deny) and (result.status, result.error, result.reason) == (
        401,
        "login_required",
        "no_cookie",
    )


# -- forwarded, anonymously ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "POST", "GET"])
def test_a_preflight_to_an_app_that_allows_cross_origin_is_forwarded_anonymously(
    method: str,
) -> None:
    fields = (("origin", SIBLING), ("access-control-request-method", method))
    result = decide(OPEN, preflight(OPEN, *fields))
    assert result == Preflight(
        API, RequestTarget("/items/7"), RequestHost("api.example.com")
    )  # no identity: Preflight has no field for one


def test_the_preflight_target_is_the_normalized_one() -> None:
    result = decide(OPEN, preflight(OPEN, target="/a/../items/./7?x=1"))
    assert isinstance(result, Preflight)
    assert result.target.origin_form == "/items/7?x=1"


def test_a_preflight_with_a_valid_cookie_is_still_anonymous() -> None:
    # Browsers never send one; a client that does gets the same answer as a browser would, and
    # the app's CORS code is never told who asked.
    result = decide(OPEN, preflight(OPEN, cookies=[OPEN.token(app="api")]))
    assert isinstance(result, Preflight)


@pytest.mark.parametrize(
    "origin",
    [
        SIBLING,  # a sibling app: what the flag is for
        "https://auth.example.com",  # the portal
        "https://api.example.com",  # its own origin
        "https://www.example.com",  # same site, not served by Lychgate
        "https://evil.example",  # another site (its page gets no cookie for the real request)
        "http://wiki.example.com",  # another scheme
        "https://wiki.example.com:8443",
        "HTTPS://Wiki.Example.COM",
    ],
)
def test_any_serialized_origin_may_ask(origin: str) -> None:
    # The same rule as the app's cross-origin writes (step 8 does not look at the Origin of an
    # app with allow_cross_origin): the app's CORS code decides which origins it answers.
    fields = (("origin", origin), ("access-control-request-method", "DELETE"))
    assert isinstance(decide(OPEN, preflight(OPEN, *fields)), Preflight)


# -- every other app, and every other request, as before ----------------------------------------


def test_a_preflight_to_an_app_without_the_flag_is_refused_as_before() -> None:
    head = preflight(SUBS, host="wiki.example.com")
    assert no_cookie(decide(SUBS, head))
    with_cookie = preflight(SUBS, host="wiki.example.com", cookies=[SUBS.token()])
    result = decide(SUBS, with_cookie)
    assert isinstance(result, ToApp)  # as before: a signed-in OPTIONS, identity and all
    assert result.identity.user_id == "user-1"
    # A sibling app of the open one is not opened by it.
    assert no_cookie(decide(OPEN, preflight(OPEN, host="wiki.example.com")))


def test_single_host_mode_forwards_no_preflight() -> None:
    # Without a token no app is named: there is nothing to forward the preflight to. Apps
    # there share one origin, so their own pages need no preflight.
    single = World("single-host", apps=(make_app("wiki", allow_cross_origin=True), *APPS[1:]))
    assert no_cookie(decide(single, preflight(single, host="localhost:8080")))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param((("origin", SIBLING),), id="no-request-method"),
        pytest.param((("access-control-request-method", "PUT"),), id="no-origin"),
        pytest.param((("accept", "*/*"),), id="neither"),
        pytest.param((("origin", SIBLING), ("access-control-request-headers", "x")), id="headers"),
    ],
)
def test_an_options_without_origin_or_request_method_is_not_a_preflight(
    fields: tuple[tuple[str, str], ...],
) -> None:
    assert no_cookie(decide(OPEN, preflight(OPEN, *fields)))
    signed_in = decide(OPEN, preflight(OPEN, *fields, cookies=[OPEN.token(app="api")]))
    assert isinstance(signed_in, ToApp)  # decided on its token, as any request
    assert signed_in.identity.user_id == "user-1"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "HEAD", "options"])
def test_only_options_is_a_preflight(method: str) -> None:
    assert no_cookie(decide(OPEN, preflight(OPEN, method=method)))


REQUEST_METHOD: Final = ("access-control-request-method", "PUT")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param((("origin", "null"), REQUEST_METHOD), id="opaque-origin"),
        pytest.param((("origin", ""), REQUEST_METHOD), id="empty-origin"),
        pytest.param((("origin", SIBLING), ("origin", SIBLING), REQUEST_METHOD), id="two-origins"),
        pytest.param((("origin", SIBLING + "/"), REQUEST_METHOD), id="origin-with-path"),
        pytest.param((("origin", "wiki.example.com"), REQUEST_METHOD), id="no-scheme"),
        pytest.param((("origin", "ftp://wiki.example.com"), REQUEST_METHOD), id="ftp"),
        pytest.param((("origin", "https://u@wiki.example.com"), REQUEST_METHOD), id="userinfo"),
        pytest.param((("origin", "https://wiki.example.com:0"), REQUEST_METHOD), id="port-0"),
        pytest.param((("origin", "https://wi%6Bi.example.com"), REQUEST_METHOD), id="escape"),
        pytest.param((("origin", "https://wiki.example.com\r"), REQUEST_METHOD), id="cr"),
        pytest.param(
            (("origin", SIBLING), REQUEST_METHOD, REQUEST_METHOD), id="two-request-methods"
        ),
        pytest.param(
            (("origin", SIBLING), ("access-control-request-method", "")), id="empty-method"
        ),
        pytest.param(
            (("origin", SIBLING), ("access-control-request-method", "PUT, DELETE")), id="list"
        ),
        pytest.param((("origin", SIBLING), ("access-control-request-method", "P\x00T")), id="nul"),
    ],
)
def test_a_malformed_preflight_is_not_a_preflight(fields: tuple[tuple[str, str], ...]) -> None:
    # Fail closed: only what a browser sends is forwarded without a token.
    assert no_cookie(decide(OPEN, preflight(OPEN, *fields)))


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(("content-length", "12"), id="content"),
        pytest.param(("transfer-encoding", "chunked"), id="chunked"),
        pytest.param(("upgrade", "websocket"), id="upgrade"),
    ],
)
def test_no_content_or_upgrade_rides_along_without_a_token(extra: tuple[str, str]) -> None:
    # A preflight has no body, and Upgrade is a forbidden request-header name: an anonymous
    # request can neither carry data to the app nor open a tunnel.
    assert no_cookie(decide(OPEN, preflight(OPEN, *ASK, extra)))


def test_an_empty_content_length_is_still_a_preflight() -> None:
    assert isinstance(decide(OPEN, preflight(OPEN, *ASK, ("content-length", "0"))), Preflight)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/.lychgate/start", ToEndpoint),
        ("/.lychgate/callback?code=x", ToEndpoint),
        ("/.lychgate/logout", ToEndpoint),
        ("/.lychgate/login", ToAuthz),
        ("/.LychGate/anything", ToAuthz),
        ("/items/../.lychgate/login", ToAuthz),
        ("//.lychgate/login", ToAuthz),
        ("/%2Elychgate/login", ToAuthz),
    ],
)
def test_a_preflight_for_a_reserved_path_never_reaches_the_app(
    target: str, expected: type[Admission]
) -> None:
    result = decide(OPEN, preflight(OPEN, target=target))
    assert isinstance(result, expected), result


@pytest.mark.parametrize("target", ["/.lychgate/internal/feed", "/.LYCHGATE/internal/x"])
def test_a_preflight_for_the_internal_api_is_404(target: str) -> None:
    result = decide(OPEN, preflight(OPEN, target=target))
    assert isinstance(result, Deny)
    assert result.status == 404


@pytest.mark.parametrize(
    "target",
    [
        "/..%2f..%2fetc/passwd",
        "/a/..;/admin",
        "/%00",
        "/a\\b",
        "/%2F.lychgate/login",
        "/.lychgate%2Finternal%2Ffeed",
        "http://other.example/",
        "*",  # OPTIONS' asterisk-form (RFC 9112 section 3.2.4): never an app's
    ],
)
def test_a_bad_target_is_400_before_anything(target: str) -> None:
    result = decide(OPEN, preflight(OPEN, target=target))
    assert isinstance(result, Deny)
    assert result.status == 400


def test_a_preflight_to_an_unknown_host_is_404() -> None:
    for host in ("nothing.example.com", "evil.example", "api.example.com.evil.example"):
        result = decide(OPEN, preflight(OPEN, host=host))
        assert isinstance(result, Deny)
        assert (result.status, result.error) == (404, "not_found")


def test_the_portal_host_is_authz_s_as_before() -> None:
    assert isinstance(decide(OPEN, preflight(OPEN, host="auth.example.com")), ToAuthz)


def test_a_disabled_or_removed_app_gets_no_preflight() -> None:
    disabled = World(
        "subdomains", apps=(*APPS, make_app("api", allow_cross_origin=True, enabled=False))
    )
    removed = World("subdomains", apps=APPS)
    for world in (disabled, removed):
        result = decide(world, preflight(world))
        assert isinstance(result, Deny)
        assert (result.status, result.error) == (404, "not_found")
    # And the snapshot that disables it stops the next preflight on the same gateway.
    off = OPEN.changed(apps=(*APPS, make_app("api", allow_cross_origin=True, enabled=False)))
    assert isinstance(decide(OPEN, preflight(OPEN), snapshot=off), Deny)
    no_flag = OPEN.changed(apps=(*APPS, make_app("api")))
    assert no_cookie(decide(OPEN, preflight(OPEN), snapshot=no_flag))


def test_before_setup_no_preflight_reaches_an_app() -> None:
    result = decide(OPEN, preflight(OPEN), snapshot=OPEN.changed(setup_done=False))
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (503, "setup_required")


def test_without_a_snapshot_a_preflight_is_503() -> None:
    result = admit(
        preflight(OPEN), now=NOW, snapshot=None, verifier=CachedVerifier(OPEN.keyring.public)
    )
    assert isinstance(result, Deny)
    assert result.status == 503


def test_the_apps_own_head_limits_bound_its_preflights() -> None:
    tight = make_app("api", allow_cross_origin=True, max_headers=8)
    world = World("subdomains", apps=(*APPS, tight))
    assert isinstance(decide(world, preflight(world)), Preflight)  # host + 5 fields
    crowded = preflight(world, *ASK, *(("x-pad", str(n)) for n in range(3)))
    result = decide(world, crowded)
    assert isinstance(result, Deny)
    assert (result.status, result.app) == (431, "api")
    assert result.identity is None


# -- the handler: the Forward carries nobody ----------------------------------------------------


def header(decision: Forward | Respond, name: str) -> list[str]:
    return [v for n, v in decision.headers if n == name]


def test_the_forwarded_preflight_carries_no_identity() -> None:
    handler, _ = handler_for(OPEN)
    spoofed = (
        ("x-lychgate-user", "admin"),
        ("x-lychgate-assertion", "forged.jws.token"),
        ("x_lychgate_email", "root@example.com"),
        ("remote-user", "admin"),
        ("cookie", "theme=dark"),
    )
    head = preflight(OPEN, *ASK, *spoofed, cookies=[OPEN.token(app="api")])
    decision = handler(head)
    assert isinstance(decision, Forward)
    assert decision.upstream.url == API.upstream
    assert decision.target == "/items/7"
    assert decision.app == "api"
    assert decision.who is None
    assert decision.session_id is None
    assert not decision.allow_upgrade
    assert decision.max_body_bytes == 0
    assert decision.response_fields is drop_lychgate_set_cookies
    names = [name for name, _ in decision.headers]
    assert not [name for name in names if name.replace("_", "-").startswith("x-lychgate-")]
    assert "remote-user" not in names
    assert header(decision, "cookie") == ["theme=dark"]  # ours stripped, as for any app
    assert header(decision, "origin") == [SIBLING]
    assert header(decision, "access-control-request-method") == ["PUT"]
    assert header(decision, "access-control-request-headers") == ["content-type"]
    assert header(decision, "host") == ["api.example.com"]


def test_an_app_without_the_flag_still_answers_401_json() -> None:
    handler, _ = handler_for(SUBS)
    decision = handler(preflight(SUBS, *ASK, *FETCH, host="wiki.example.com"))
    assert isinstance(decision, Respond)
    assert decision.status == 401
    assert json.loads(decision.body)["error"] == "login_required"


def test_without_an_assertion_key_a_preflight_is_refused_too() -> None:
    world = World("subdomains", apps=(*APPS, API), assertion_key=None)
    handler, _ = handler_for(world)
    decision = handler(preflight(world))
    assert isinstance(decision, Respond)
    assert decision.status == 503


# -- through the real engine --------------------------------------------------------------------


async def cors_app(seen: Seen, reply: Reply) -> None:
    """An app with its own CORS code: it answers a preflight from a sibling, with no user."""
    if seen.method == "OPTIONS":
        await reply.head(
            204,
            [
                ("access-control-allow-origin", seen.header("origin") or ""),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "PUT, DELETE"),
                ("access-control-allow-headers", "content-type"),
                ("set-cookie", "__Host-lychgate=planted; Path=/; Secure"),
            ],
        )
        await reply.end()
    else:
        await reply.send(200, f"{seen.method} as {seen.header('x-lychgate-user')}".encode())


@pytest.mark.loopback
async def test_the_app_answers_the_preflight_and_the_real_request_still_needs_a_token(
    gateway: Start, connect: Connect
) -> None:
    async with http_upstream(cors_app) as up:
        world = World(
            "subdomains",
            apps=(
                make_app("wiki", upstream=up.url),
                make_app("api", upstream=up.url, allow_cross_origin=True),
                *APPS[1:],
            ),
        )
        handler, _ = handler_for(world)
        server = await gateway(handler)
        client = await connect(server.port)
        ask = (
            "OPTIONS /items/7 HTTP/1.1\r\nHost: api.example.com\r\n"
            f"Origin: {SIBLING}\r\nAccess-Control-Request-Method: PUT\r\n"
            "Access-Control-Request-Headers: content-type\r\nAccept: */*\r\n"
            "X-Lychgate-User: admin\r\nX_Lychgate_Assertion: forged\r\n\r\n"
        )
        await client.send(ask.encode())
        answer = await client.read_response()
        assert answer.status == 204  # the app's own answer
        assert answer.header("access-control-allow-origin") == SIBLING
        assert answer.header("access-control-allow-methods") == "PUT, DELETE"
        assert answer.header("set-cookie") is None  # no app sets our cookies
        [seen] = up.seen
        assert (seen.method, seen.target) == ("OPTIONS", "/items/7")
        names = [name.lower().replace("_", "-") for name, _ in seen.headers]
        assert not [name for name in names if name.startswith("x-lychgate-")]
        assert seen.header("origin") == SIBLING
        assert seen.header("access-control-request-method") == "PUT"

        # The PUT the browser then sends carries the cookie, and is admitted on it alone.
        put = f"PUT /items/7 HTTP/1.1\r\nHost: api.example.com\r\nOrigin: {SIBLING}\r\n"
        await client.send(f"{put}Content-Length: 0\r\n\r\n".encode())
        assert (await client.read_response()).status == 401
        cookie = f"Cookie: {world.cookie_name}={world.token(app='api')}\r\n"
        await client.send(f"{put}{cookie}Content-Length: 0\r\n\r\n".encode())
        real = await client.read_response()
        assert (real.status, real.body) == (200, b"PUT as user-1")
        assert len(up.seen) == 2

        # An app without the flag still never sees a cookieless preflight.
        await client.send(ask.replace("api.example.com", "wiki.example.com").encode())
        assert (await client.read_response()).status == 401
        assert len(up.seen) == 2

        # A connection that served nobody is never pooled: a faulty app's late bytes would
        # be the next client's answer. The user's connection is reused; each preflight's not.
        connections = up.connections
        await client.send(ask.encode())
        assert (await client.read_response()).status == 204
        await client.send(ask.encode())
        assert (await client.read_response()).status == 204
        assert up.connections == connections + 2
        await client.send(f"{put}{cookie}Content-Length: 0\r\n\r\n".encode())
        assert (await client.read_response()).status == 200
        assert up.connections == connections + 2  # the user's, from the pool
