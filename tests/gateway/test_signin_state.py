"""The sign-in state: ``/.lychgate/start`` sets it, the callback takes a code only with it.

Login CSRF (THREAT_MODEL T30): a link elsewhere that carries an attacker's fresh code must not
sign the user in as the attacker, in either routing mode. See ``lychgate.gateway.signin_state``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.test_endpoints import CODE, header, run, setup
from gateway.world import NAVIGATE, World
from lychgate.gateway.admission import ToAuthz, ToEndpoint, admit
from lychgate.gateway.cookies import (
    drop_lychgate_set_cookies,
    is_lychgate_cookie,
    strip_lychgate_cookies,
)
from lychgate.gateway.signin_state import STATE_MAX_AGE, is_state, new_state
from lychgate.gateway.types import RequestHead, Respond

SINGLE = World("single-host")
SUBS = World("subdomains")
GRAFANA = "metrics.corp.example"
CROSS_SITE_LINK = (("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "document"))


def start(
    world: World,
    query: str,
    *,
    host: str | None = None,
    cookie: str | None = None,
    headers: tuple[tuple[str, str], ...] = NAVIGATE,
    method: str = "GET",
) -> RequestHead:
    fields = headers if cookie is None else (*headers, ("cookie", cookie))
    return world.head(f"/.lychgate/start?{query}", host=host, headers=fields, method=method)


def state_of(response: Respond) -> tuple[str, str]:
    """The state in the Location and the one in the Set-Cookie (with its attributes)."""
    [location] = header(response, "location")
    [state] = parse_qs(urlsplit(location).query)["state"]
    [cookie] = header(response, "set-cookie")
    return state, cookie


def callback(
    world: World,
    *,
    state: str | None,
    cookie: str | None,
    host: str | None = None,
    headers: tuple[tuple[str, str], ...] = NAVIGATE,
) -> RequestHead:
    query = f"code={CODE}&rd=/here" + ("" if state is None else f"&state={state}")
    fields = headers if cookie is None else (*headers, ("cookie", cookie))
    return world.head(f"/.lychgate/callback?{query}", host=host, headers=fields)


# -- start --------------------------------------------------------------------------------------


async def test_start_sets_a_state_and_goes_to_authz_open_with_it() -> None:
    endpoints, authz, _ = setup(SINGLE)
    response = await run(endpoints, SINGLE, start(SINGLE, "app=wiki&rd=/docs/page%3Fx%3D1"))
    assert response.status == 303
    [location] = header(response, "location")
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("", "", "/.lychgate/open/wiki")
    query = parse_qs(parts.query)
    assert query["rd"] == ["/docs/page?x=1"]
    state, cookie = state_of(response)
    assert is_state(state)
    assert (
        cookie == f"lychgate_state={state}; Path=/; Max-Age={STATE_MAX_AGE}; HttpOnly; SameSite=Lax"
    )
    assert header(response, "cache-control") == ["no-store"]
    assert authz.redeemed == []  # nothing is minted or spent here


async def test_start_on_an_app_host_goes_to_the_portal_with_a_host_only_cookie() -> None:
    endpoints, _, _ = setup(SUBS)
    response = await run(endpoints, SUBS, start(SUBS, "rd=/d", host=GRAFANA))
    assert response.status == 303
    [location] = header(response, "location")
    assert location.startswith("https://auth.example.com/.lychgate/open/grafana?rd=/d&state=")
    state, cookie = state_of(response)
    # __Host-: Secure, Path=/ and no Domain, so no sibling subdomain can toss its own.
    assert cookie.startswith(f"__Host-lychgate_state={state}; Path=/; Max-Age=")
    assert "; Secure" in cookie
    assert "domain" not in cookie.lower()


async def test_each_start_makes_a_new_state_unless_the_browser_has_one() -> None:
    endpoints, _, _ = setup(SINGLE)
    first, _ = state_of(await run(endpoints, SINGLE, start(SINGLE, "app=wiki")))
    second, _ = state_of(await run(endpoints, SINGLE, start(SINGLE, "app=wiki")))
    assert first != second
    # Two tabs signing in at once keep one state, so neither undoes the other's.
    held = new_state()
    kept, _ = state_of(
        await run(endpoints, SINGLE, start(SINGLE, "app=wiki", cookie=f"lychgate_state={held}"))
    )
    assert kept == held


@pytest.mark.parametrize(
    "cookie",
    [
        "lychgate_state=short",
        "lychgate_state=" + "x" * 30 + "!",
        f"lychgate_state={'a' * 22}; lychgate_state={'b' * 22}",
    ],
    ids=["too short", "bad character", "two values"],
)
async def test_start_replaces_a_state_it_would_not_have_made(cookie: str) -> None:
    endpoints, _, _ = setup(SINGLE)
    state, _ = state_of(await run(endpoints, SINGLE, start(SINGLE, "app=wiki", cookie=cookie)))
    assert state not in cookie


@pytest.mark.parametrize(
    ("world", "query", "host", "status"),
    [
        (SINGLE, "rd=/", None, 404),  # single-host: the token names the app, so start must
        (SINGLE, "app=nope", None, 404),
        (SINGLE, "app=old", None, 404),  # disabled
        (SINGLE, "app=wiki&app=admin", None, 400),
        (SINGLE, "app=wiki&rd=/a&rd=/b", None, 400),
        (SINGLE, "app=wiki&rd=%ff", None, 400),
        (SUBS, "app=wiki", GRAFANA, 404),  # the host names grafana
    ],
    ids=["no app", "unknown", "disabled", "two apps", "two rds", "bad utf-8", "other app"],
)
async def test_start_refuses_what_names_no_app_here(
    world: World, query: str, host: str | None, status: int
) -> None:
    endpoints, _, _ = setup(world)
    response = await run(endpoints, world, start(world, query, host=host))
    assert response.status == status
    assert header(response, "set-cookie") == []


@pytest.mark.parametrize(
    "rd", ["https://evil.example/", "//evil.example", "/.lychgate/logout", "/%2Elychgate/x"]
)
async def test_start_takes_only_a_same_origin_path_outside_ours(rd: str) -> None:
    endpoints, _, _ = setup(SINGLE)
    response = await run(endpoints, SINGLE, start(SINGLE, f"app=wiki&rd={rd}"))
    [location] = header(response, "location")
    assert parse_qs(urlsplit(location).query)["rd"] == ["/"]


async def test_start_follows_a_link_from_anywhere_but_only_as_a_navigation() -> None:
    endpoints, _, _ = setup(SUBS)
    # The portal is another site for an app on a host of its own: its links must work.
    linked = await run(endpoints, SUBS, start(SUBS, "", host=GRAFANA, headers=CROSS_SITE_LINK))
    assert linked.status == 303
    image = (("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "image"))
    embedded = await run(endpoints, SUBS, start(SUBS, "", host=GRAFANA, headers=image))
    assert embedded.status == 403
    assert header(embedded, "set-cookie") == []
    posted = await run(endpoints, SUBS, start(SUBS, "", host=GRAFANA, method="POST"))
    assert posted.status == 405


def test_start_on_the_portal_host_is_authz_business() -> None:
    request = start(SUBS, "app=wiki", host="auth.example.com")
    admission = admit(
        request, now=SUBS.snapshot.issued_at, snapshot=SUBS.snapshot, verifier=SUBS.keyring.public
    )
    assert isinstance(admission, ToAuthz)
    on_app = admit(
        start(SUBS, "", host=GRAFANA),
        now=SUBS.snapshot.issued_at,
        snapshot=SUBS.snapshot,
        verifier=SUBS.keyring.public,
    )
    assert isinstance(on_app, ToEndpoint)
    assert on_app.name == "start"


# -- callback -----------------------------------------------------------------------------------


async def test_a_started_sign_in_finishes() -> None:
    token = SUBS.token(app="grafana")
    endpoints, authz, _ = setup(SUBS, codes={CODE: token})
    state, set_state = state_of(await run(endpoints, SUBS, start(SUBS, "", host=GRAFANA)))
    held = set_state.split(";", 1)[0]  # what the browser sends back
    request = callback(SUBS, state=state, cookie=held, host=GRAFANA, headers=CROSS_SITE_LINK)
    response = await run(endpoints, SUBS, request)
    assert response.status == 302
    assert header(response, "location") == ["/here"]
    app_cookie, cleared = header(response, "set-cookie")
    assert app_cookie.startswith(f"__Host-lychgate={token};")
    assert cleared.startswith("__Host-lychgate_state=; Path=/; Max-Age=0;")
    assert authz.redeemed == [CODE]


STATE = "Victims_state_0123456789"
OTHER = "Attackers_state_01234567"


@pytest.mark.parametrize(
    ("state", "cookie"),
    [
        (None, f"lychgate_state={STATE}"),  # an old-style link, or one made elsewhere
        (STATE, None),  # a browser that never ran start: the attacker's link, typically
        (OTHER, f"lychgate_state={STATE}"),  # the attacker's own state, the victim's cookie
        (STATE, f"lychgate_state={STATE}; lychgate_state={OTHER}"),  # one of them tossed
        (f"{STATE}&state={STATE}", f"lychgate_state={STATE}"),
        ("short", "lychgate_state=short"),
        (STATE, f"lychgate={STATE}"),  # the wrong cookie
        (STATE.upper(), f"lychgate_state={STATE}"),
    ],
    ids=[
        "no state",
        "no cookie",
        "other state",
        "two cookies",
        "two states",
        "malformed",
        "wrong cookie",
        "letter case",
    ],
)
async def test_a_code_without_this_browsers_state_is_burnt_and_sets_no_cookie(
    state: str | None, cookie: str | None
) -> None:
    # Spent without use: a page that made the callback fail (in single-host mode an app's
    # page shares this origin and can change the state cookie) must not be able to read the
    # code in the URL and redeem it in a browser of its own.
    for world, host, headers in (
        (SINGLE, None, NAVIGATE),
        (SUBS, GRAFANA, CROSS_SITE_LINK),
    ):
        token = world.token(app="grafana") if world is SUBS else world.token()
        endpoints, authz, _ = setup(world, codes={CODE: token})
        if cookie is not None and world is SUBS:
            cookie = cookie.replace("lychgate", "__Host-lychgate")
        request = callback(world, state=state, cookie=cookie, host=host, headers=headers)
        response = await run(endpoints, world, request)
        assert response.status == 400, (world.snapshot.routing, response)
        assert authz.redeemed == [CODE]  # burnt: nobody can redeem it now
        assert header(response, "set-cookie") == []
        assert b"Open the app again" in response.body
        assert header(response, "content-type") == ["text/html; charset=utf-8"]


# -- the cookie's namespace ---------------------------------------------------------------------


def test_the_state_cookie_never_reaches_an_app_and_no_app_sets_it() -> None:
    assert is_lychgate_cookie("__Host-lychgate_state")
    assert is_lychgate_cookie("lychgate_state")
    assert strip_lychgate_cookies([f"theme=dark; __Host-lychgate_state={STATE}"]) == "theme=dark"
    fields = [(b"set-cookie", f"__Host-lychgate_state={STATE}; Path=/".encode())]
    assert drop_lychgate_set_cookies(fields) == []


async def test_a_tab_that_lost_the_race_goes_on_if_the_other_signed_in() -> None:
    # Two tabs began one sign-in (one state); the first to finish cleared it. The second
    # already holds a good app cookie from the first: it goes on to its page (its own code
    # burnt: a code whose callback was refused is never left for anyone to redeem).
    endpoints, authz, _ = setup(SUBS, codes={CODE: SUBS.token(app="grafana")})
    held = f"__Host-lychgate={SUBS.token(app='grafana')}"
    request = callback(SUBS, state=STATE, cookie=held, host=GRAFANA, headers=CROSS_SITE_LINK)
    response = await run(endpoints, SUBS, request)
    assert response.status == 302
    assert header(response, "location") == ["/here"]
    assert header(response, "set-cookie") == []
    assert authz.redeemed == [CODE]
    # A cookie for another app, or one that no longer verifies, does not count.
    for other in (SUBS.token(app="wiki"), SUBS.token(sid="revoked-sess", app="grafana")):
        refused = callback(
            SUBS,
            state=STATE,
            cookie=f"__Host-lychgate={other}",
            host=GRAFANA,
            headers=CROSS_SITE_LINK,
        )
        assert (await run(endpoints, SUBS, refused)).status == 400


async def test_the_refusal_page_links_back_to_where_the_user_was_going() -> None:
    endpoints, _, _ = setup(SINGLE, codes={CODE: SINGLE.token()})
    request = SINGLE.head(
        f"/.lychgate/callback?code={CODE}&rd=/docs/a%3Fq%3D%22x%22&state={STATE}",
        headers=NAVIGATE,
    )
    response = await run(endpoints, SINGLE, request)
    assert response.status == 400
    assert b'<a href="/docs/a?q=&quot;x&quot;">Open the app again</a>' in response.body  # escaped
