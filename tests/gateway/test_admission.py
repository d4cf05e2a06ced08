"""The admission decision, branch by branch, without sockets (STYLE.md item 1).

Covers SECURITY.md items 2-5 and 9 at the decision level: whatever the input, the outcome is a
forward only for a fully valid token, and otherwise a redirect to login or a 4xx/5xx.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final, cast

import pytest

from fixtures.keys import KEY_NOW, forge_jws, make_keyring, signer_private_key
from gateway.world import FETCH, NAVIGATE, NOW, World
from lychgate.gateway.admission import (
    MAX_COOKIE_VALUES,
    Admission,
    Deny,
    Redirect,
    ToApp,
    ToAuthz,
    ToEndpoint,
    admit,
    is_navigation,
)
from lychgate.gateway.admit_memo import AdmissionMemo
from lychgate.gateway.paths import RequestTarget
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead
from lychgate.tokens import (
    CachedVerifier,
    IdentityAssertion,
    VerifiedJWS,
    Verifier,
    encode_assertion,
)

SINGLE = World("single-host")
SUBS = World("subdomains")


def decide(world: World, request: RequestHead, **kw: Any) -> Admission:
    """Admit ``request`` without a memo, and twice through a fresh one (filled, then hit):
    every test here also checks that a remembered decision is the decision."""
    snapshot = kw.pop("snapshot", world.snapshot)
    verifier = kw.pop("verifier", CachedVerifier(world.keyring.public))
    now = kw.pop("now", NOW)
    plain = admit(request, now=now, snapshot=snapshot, verifier=verifier)
    memo = AdmissionMemo()
    for _ in range(2):
        remembered = admit(request, now=now, snapshot=snapshot, verifier=verifier, memo=memo)
        assert remembered == plain
    return plain


def assert_refused(result: Admission, *, reason: str | None = None) -> None:
    """A 401 for a script (and never a forward)."""
    assert isinstance(result, Deny), result
    assert result.status == 401
    assert result.error == "login_required"
    if reason is not None:
        assert result.reason == reason


# -- the happy paths ----------------------------------------------------------------------------


def test_single_host_admits_the_app_named_by_the_token() -> None:
    result = decide(SINGLE, SINGLE.head("/a/../page?x=1", cookies=[SINGLE.token()]))
    assert isinstance(result, ToApp)
    assert result.app.slug == "wiki"
    assert result.target.origin_form == "/page?x=1"
    assert result.host.name == "localhost"
    identity = result.identity
    assert (identity.session_id, identity.user_id, identity.app) == ("sess-1", "user-1", "wiki")
    assert identity.profile.email == "ann@example.com"
    assert not identity.admin
    assert identity.expires_at == KEY_NOW + timedelta(hours=1)


def test_subdomains_admits_the_app_of_the_host() -> None:
    request = SUBS.head("/", host="metrics.corp.example", cookies=[SUBS.token(app="grafana")])
    result = decide(SUBS, request)
    assert isinstance(result, ToApp)
    assert result.app.slug == "grafana"


def test_admins_only_app() -> None:
    admin = SINGLE.token(app="admin", sub="user-2", adm=True)
    assert isinstance(decide(SINGLE, SINGLE.head("/", cookies=[admin])), ToApp)
    user = SINGLE.token(app="admin")
    result = decide(SINGLE, SINGLE.head("/", cookies=[user]))
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (403, "forbidden")


# -- no valid token: navigation vs script -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "navigation"),
    [
        ("GET", NAVIGATE, True),
        ("HEAD", NAVIGATE, True),
        ("GET", (("accept", "text/html"),), True),
        ("GET", (("accept", "TEXT/HTML,application/xhtml+xml"),), True),
        ("GET", (("sec-fetch-mode", "Navigate"),), True),
        ("GET", (), False),
        ("GET", (("accept", "application/json"),), False),
        ("GET", (("accept", "*/*"),), False),
        ("GET", FETCH, False),
        ("GET", (("sec-fetch-mode", "cors"), ("accept", "text/html")), False),
        ("GET", (("sec-fetch-mode", "websocket"),), False),
        ("GET", (("sec-fetch-mode", "navigate"), ("sec-fetch-mode", "navigate")), False),
        ("POST", NAVIGATE, False),
        ("PUT", (("accept", "text/html"),), False),
        ("OPTIONS", NAVIGATE, False),
    ],
)
def test_is_navigation(method: str, headers: tuple[tuple[str, str], ...], navigation: bool) -> None:
    assert is_navigation(SINGLE.head("/", method=method, headers=headers)) is navigation


def test_navigation_without_a_cookie_goes_to_login() -> None:
    result = decide(
        SINGLE, SINGLE.head("/wiki/Some Page?x=1&y=2".replace(" ", "%20"), headers=NAVIGATE)
    )
    assert result == Redirect(
        "/.lychgate/login?rd=/wiki/Some%2520Page%3Fx%3D1%26y%3D2", "login: no_cookie"
    )


def test_script_without_a_cookie_gets_a_401_naming_the_login_page() -> None:
    result = decide(SINGLE, SINGLE.head("/api/items", headers=FETCH))
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (401, "login_required")
    assert result.login_url == "/.lychgate/login?rd=/api/items"
    assert result.reason == "no_cookie"


def test_subdomains_login_is_on_the_portal_with_the_full_url() -> None:
    request = SUBS.head("/a?b=c", host="Wiki.Example.com.", headers=NAVIGATE)
    result = decide(SUBS, request)
    assert result == Redirect(
        "https://auth.example.com/.lychgate/login?rd=https://wiki.example.com/a%3Fb%3Dc",
        "login: no_cookie",
    )


def test_upgrade_without_a_session_is_refused() -> None:
    request = SINGLE.head(
        "/socket",
        headers=(
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-fetch-mode", "websocket"),
        ),
    )
    assert_refused(decide(SINGLE, request), reason="no_cookie")


# -- tokens that must not pass (SECURITY.md items 5 and 6) ----------------------------------------

OTHER = make_keyring()


def _tampered_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["adm"] = True
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none(token: str) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"lychgate-app+jwt"}').rstrip(b"=")
    return f"{header.decode()}.{token.split('.')[1]}."


BAD_TOKENS: list[tuple[str, str, str]] = [
    ("empty", "", "malformed"),
    ("garbage", "garbage", "malformed"),
    ("not base64", "!!!.@@@.###", "malformed"),
    ("truncated", SINGLE.token()[:-10], "bad_signature"),
    ("two parts", ".".join(SINGLE.token().split(".")[:2]), "malformed"),
    ("huge", "a" * 9000 + ".b.c", "too_large"),
    ("tampered", _tampered_payload(SINGLE.token()), "bad_signature"),
    ("alg none", _alg_none(SINGLE.token()), "malformed"),
    ("unknown kid", SINGLE.token(keyring=OTHER), "unknown_kid"),
    ("expired", SINGLE.token(issued=NOW - timedelta(hours=2)), "expired"),
    ("expires now", SINGLE.token(issued=NOW - timedelta(hours=1)), "expired"),
    ("from the future", SINGLE.token(issued=NOW + timedelta(minutes=5)), "not_yet_valid"),
    ("other issuer", SINGLE.token(issuer="https://evil.example"), "wrong_issuer"),
    ("disabled app", SINGLE.token(app="old"), "unknown_app"),
    ("unknown app", SINGLE.token(app="nope"), "unknown_app"),
    ("revoked session", SINGLE.token(sid="revoked-sess"), "revoked"),
    # Signed before tokens named sessions by handle: the feed could not revoke it.
    ("session by id", SINGLE.token(sid="ses_AAAAAAAAAAAAAAAAAAAAAA"), "legacy_token"),
    ("unknown user", SINGLE.token(sub="ghost"), "unknown_user"),
]


@pytest.mark.parametrize(
    ("token", "reason"), [(t, r) for _, t, r in BAD_TOKENS], ids=[n for n, _, _ in BAD_TOKENS]
)
def test_bad_tokens_are_refused(token: str, reason: str) -> None:
    assert_refused(decide(SINGLE, SINGLE.head("/", cookies=[token], headers=FETCH)), reason=reason)
    navigation = decide(SINGLE, SINGLE.head("/", cookies=[token], headers=NAVIGATE))
    assert isinstance(navigation, Redirect)
    assert navigation.reason == f"login: {reason}"  # the access log says why


def test_a_handle_that_happens_to_begin_like_an_id_is_admitted() -> None:
    # One handle in 64**4 begins with "ses_"; it is 22 characters, an id 26.
    head = SINGLE.head("/", cookies=[SINGLE.token(sid="ses_AAAAAAAAAAAAAAAAAA")], headers=FETCH)
    assert isinstance(decide(SINGLE, head), ToApp)


def test_a_plain_jwt_signed_by_our_key_is_not_an_app_token() -> None:
    private = signer_private_key(SINGLE.keyring)
    header = {"alg": "ES256", "kid": SINGLE.keyring.signer.kid, "typ": "JWT"}
    token = forge_jws(private, header, {"sub": "user-1", "app": "wiki", "sid": "s", "adm": True})
    assert_refused(
        decide(SINGLE, SINGLE.head("/", cookies=[token], headers=FETCH)), reason="wrong_type"
    )


def test_an_identity_assertion_is_not_an_app_token() -> None:
    claims = IdentityAssertion.issue(
        issuer=SINGLE.snapshot.issuer,
        app=cast(Any, "wiki"),
        sub=cast(Any, "user-1"),
        email=None,
        name="Ann",
        adm=True,
        now=KEY_NOW,
    )
    assertion = encode_assertion(SINGLE.keyring, claims)
    result = decide(SINGLE, SINGLE.head("/", cookies=[assertion], headers=FETCH))
    assert_refused(result, reason="wrong_type")


def test_a_token_for_another_app_host_is_refused() -> None:
    request = SUBS.head("/", host="wiki.example.com", cookies=[SUBS.token(app="grafana")])
    assert_refused(decide(SUBS, request), reason="wrong_audience")


def test_a_token_signed_by_the_assertion_key_is_refused() -> None:
    # The gateway holds the assertion key; it must not be able to mint app tokens it accepts.
    keyring = SINGLE.snapshot.assertion_keyring
    assert keyring is not None
    token = SINGLE.token(keyring=keyring)
    assert_refused(
        decide(SINGLE, SINGLE.head("/", cookies=[token], headers=FETCH)), reason="unknown_kid"
    )


def test_the_plain_cookie_name_is_ignored_on_https() -> None:
    # "lychgate=" can be tossed from a sibling subdomain; only "__Host-lychgate" counts on https.
    request = SUBS.head("/", headers=(("cookie", f"lychgate={SUBS.token()}"), *FETCH))
    assert_refused(decide(SUBS, request), reason="no_cookie")


def test_the_prefixed_name_is_ignored_on_plain_http() -> None:
    request = SINGLE.head("/", headers=(("cookie", f"__Host-lychgate={SINGLE.token()}"), *FETCH))
    assert_refused(decide(SINGLE, request), reason="no_cookie")


def test_cookie_name_is_case_sensitive() -> None:
    request = SUBS.head("/", headers=(("cookie", f"__host-lychgate={SUBS.token()}"), *FETCH))
    assert_refused(decide(SUBS, request), reason="no_cookie")


# -- duplicated cookies (cookie tossing) --------------------------------------------------------


def test_a_tossed_garbage_value_does_not_lock_the_user_out() -> None:
    for values in (["garbage", SINGLE.token()], [SINGLE.token(), "", "x.y.z"]):
        assert isinstance(decide(SINGLE, SINGLE.head("/", cookies=values)), ToApp)


def test_the_same_token_twice_is_one_token() -> None:
    token = SINGLE.token()
    assert isinstance(decide(SINGLE, SINGLE.head("/", cookies=[token, token])), ToApp)


def test_two_valid_tokens_are_ambiguous() -> None:
    values = [SINGLE.token(sid="mine"), SINGLE.token(sid="tossed", sub="user-2")]
    result = decide(SINGLE, SINGLE.head("/", cookies=values, headers=FETCH))
    assert_refused(result, reason="ambiguous_cookies")


def test_two_headers_are_read_together() -> None:
    request = SINGLE.head(
        "/",
        headers=(
            ("cookie", f"lychgate={SINGLE.token(sid='a')}"),
            ("cookie", f"lychgate={SINGLE.token(sid='b')}"),
            *FETCH,
        ),
    )
    assert_refused(decide(SINGLE, request), reason="ambiguous_cookies")


def test_too_many_values_are_refused_without_verifying() -> None:
    values = [f"junk{i}" for i in range(MAX_COOKIE_VALUES)] + [SINGLE.token()]
    result = decide(SINGLE, SINGLE.head("/", cookies=values, headers=FETCH))
    assert_refused(result, reason="too_many_cookies")


# -- routing outcomes (SECURITY.md items 2 and 4) -------------------------------------------------


@pytest.mark.parametrize(
    ("world", "host", "target"),
    [
        (SINGLE, "evil.example", "/"),
        (SINGLE, "127.0.0.1:8080", "/"),
        (SINGLE, "wiki.localhost:8080", "/"),
        (SUBS, "evil.example", "/"),
        (SUBS, "old.example.com", "/"),
        (SUBS, "example.com", "/"),
        (SUBS, "wiki.example.com.evil.example", "/"),
        (SUBS, "wiki.example.com", "/.lychgate/internal/feed"),
        (SINGLE, "localhost:8080", "/.lychgate/internal/feed"),
        (SINGLE, "localhost:8080", "/.lychgate/x/../internal/feed"),
        (SINGLE, "localhost:8080", "/.lychgate/%69nternal/feed"),
    ],
)
def test_unknown_hosts_and_internal_paths_are_404_even_with_a_token(
    world: World, host: str, target: str
) -> None:
    request = world.head(target, host=host, cookies=[world.token()], headers=NAVIGATE)
    result = decide(world, request)
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (404, "not_found")


@pytest.mark.parametrize(
    "target",
    [
        "/..%2f..%2fetc/passwd",
        "/a/..;/admin",
        "/%00",
        "/a\\b",
        "/%c0%ae%c0%ae/",
        "/a#b",
        "http://other.example/",
        "*",
        "/.lychgate/internal%2Ffeed",
    ],
)
def test_bad_targets_are_400_before_anything_else(target: str) -> None:
    # Before the token and before navigation is considered: a valid token does not make a bad
    # target acceptable, and a browser navigation is not redirected to login.
    for cookies in ([SINGLE.token()], None):
        for headers in (NAVIGATE, FETCH, ()):
            result = decide(SINGLE, SINGLE.head(target, cookies=cookies, headers=headers))
            assert isinstance(result, Deny)
            assert (result.status, result.error) == (400, "bad_request")
            assert result.login_url is None


# -- the reserved namespace cannot be reached by spelling (SECURITY.md item 2, THREAT_MODEL T17) --

ESCAPED = Deny(400, "bad_request", reason="target: path under /.lychgate holds a percent-escape")
NO_ROUTE = Deny(404, "not_found", reason="no route: unknown host or internal path")

#: Every kind of host: single-host, a subdomains app host, and the subdomains portal host
#: (which sends everything but the internal API to authz).
EVERY_HOST = [
    pytest.param(SINGLE, "localhost:8080", id="single-host"),
    pytest.param(SUBS, "wiki.example.com", id="app-host"),
    pytest.param(SUBS, "auth.example.com", id="portal-host"),
]

INTERNAL_SPELLINGS = [
    # An encoded "/" (any case), anywhere in or before the prefix: uvicorn would decode it into
    # /.lychgate/internal/... after the gateway had decided on "an authz page". Refused (400).
    ("/.lychgate/internal%2Ffeed", ESCAPED),
    ("/.lychgate/internal%2fhandoff", ESCAPED),
    ("/.lychgate%2Finternal%2Fhandoff", ESCAPED),
    ("/%2F.lychgate/internal/feed", ESCAPED),
    ("/.lychgate/internal%252Ffeed", ESCAPED),  # double encoding
    # An encoded "?" or "#" next to a reserved segment.
    ("/.lychgate/internal%3F", ESCAPED),
    ("/.lychgate/internal%3F/feed", ESCAPED),
    ("/.lychgate%23/internal/feed", ESCAPED),
    # Backslashes, raw or encoded, are refused on any path.
    (
        "/.lychgate/internal%5Cfeed",
        Deny(400, "bad_request", reason="target: path holds an escaped backslash"),
    ),
    (
        "/.lychgate/internal\\feed",
        Deny(400, "bad_request", reason="target: path holds a backslash"),
    ),
    # The prefix with unreserved escapes or in another case is the prefix: routing's 404.
    ("/%2Elychgate/internal/feed", NO_ROUTE),
    ("/.lychgat%65/internal/feed", NO_ROUTE),
    ("/.LYCHGATE/internal/feed", NO_ROUTE),
    ("/.LychGate/Internal/Handoff", NO_ROUTE),
    ("/.lychgate/internal", NO_ROUTE),
]


@pytest.mark.parametrize(("world", "host"), EVERY_HOST)
@pytest.mark.parametrize(
    ("target", "denial"), INTERNAL_SPELLINGS, ids=[t for t, _ in INTERNAL_SPELLINGS]
)
def test_no_spelling_of_the_internal_api_is_forwarded(
    world: World, host: str, target: str, denial: Deny
) -> None:
    for cookies, headers in ((None, ()), ([world.token()], NAVIGATE), ([world.token()], FETCH)):
        request = world.head(target, host=host, cookies=cookies, headers=headers)
        assert decide(world, request) == denial


@pytest.mark.parametrize(("world", "host"), EVERY_HOST)
def test_a_query_cannot_widen_the_health_check(world: World, host: str) -> None:
    result = decide(world, world.head("/.lychgate/healthz?/../internal/feed", host=host))
    assert isinstance(result, ToEndpoint)
    assert result.name == "healthz"
    assert result.target == RequestTarget("/.lychgate/healthz", "/../internal/feed")


@pytest.mark.parametrize(
    ("world", "host"), [(SINGLE, "localhost:8080"), (SUBS, "wiki.example.com")]
)
def test_a_query_cannot_widen_an_app_route(world: World, host: str) -> None:
    request = world.head("/x?/.lychgate/internal/feed", host=host, cookies=[world.token()])
    result = decide(world, request)
    assert isinstance(result, ToApp)
    assert result.app.slug == "wiki"
    assert result.target == RequestTarget("/x", "/.lychgate/internal/feed")


def test_a_query_on_the_portal_goes_to_authz_as_the_path_it_follows() -> None:
    result = decide(SUBS, SUBS.head("/x?/.lychgate/internal/feed", host="auth.example.com"))
    assert result == ToAuthz(
        RequestTarget("/x", "/.lychgate/internal/feed"), RequestHost("auth.example.com")
    )


def test_absolute_form_naming_the_host_is_fine() -> None:
    request = SINGLE.head("http://LOCALHOST:8080/x/../y", cookies=[SINGLE.token()])
    result = decide(SINGLE, request)
    assert isinstance(result, ToApp)
    assert result.target.origin_form == "/y"


def test_missing_and_duplicate_host_are_400() -> None:
    token = SINGLE.token()
    with_host = SINGLE.head("/", cookies=[token])
    no_host = replace(with_host, headers=with_host.headers[1:])
    two = SINGLE.head("/", cookies=[token], headers=(("host", "localhost:8080"),))
    for request in (no_host, two):
        result = decide(SINGLE, request)
        assert isinstance(result, Deny)
        assert result.status == 400


def test_sni_disagreeing_with_host_is_421() -> None:
    request = SUBS.head(
        "/", host="wiki.example.com", cookies=[SUBS.token()], sni="metrics.corp.example"
    )
    result = decide(SUBS, request)
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (421, "misdirected_request")


# -- control plane and endpoints ------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/.lychgate/login?rd=/x", "/.lychgate/jwks.json", "/.LYCHGATE/anything", "/.lychgate"],
)
def test_reserved_paths_go_to_authz_without_a_token(target: str) -> None:
    result = decide(SINGLE, SINGLE.head(target))
    assert isinstance(result, ToAuthz)


def test_portal_host_goes_to_authz() -> None:
    result = decide(SUBS, SUBS.head("/", host="auth.example.com"))
    assert isinstance(result, ToAuthz)


@pytest.mark.parametrize("name", ["callback", "logout", "healthz"])
def test_gateway_endpoints(name: str) -> None:
    result = decide(SUBS, SUBS.head(f"/.lychgate/{name}?code=x", host="wiki.example.com"))
    assert isinstance(result, ToEndpoint)
    assert result.name == name
    if name != "healthz":
        assert result.app is not None
        assert result.app.slug == "wiki"


# -- setup, missing snapshot, fail closed (SECURITY.md item 9) -------------------------------------


def test_before_setup_navigations_go_to_setup() -> None:
    snapshot = SINGLE.changed(setup_done=False)
    token = SINGLE.token()
    result = decide(SINGLE, SINGLE.head("/", cookies=[token], headers=NAVIGATE), snapshot=snapshot)
    assert result == Redirect("/.lychgate/setup", "setup")
    result = decide(SINGLE, SINGLE.head("/", cookies=[token], headers=FETCH), snapshot=snapshot)
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (503, "setup_required")
    setup_page = decide(SINGLE, SINGLE.head("/.lychgate/setup"), snapshot=snapshot)
    assert isinstance(setup_page, ToAuthz)


def test_before_setup_on_subdomains_setup_is_on_the_portal() -> None:
    result = decide(SUBS, SUBS.head("/", headers=NAVIGATE), snapshot=SUBS.changed(setup_done=False))
    assert result == Redirect("https://auth.example.com/.lychgate/setup", "setup")


LOGIN_RD: Final = "https://auth.example.com/.lychgate/login?rd=https://wiki.example.com"
APP_HOST: Final = RequestHost("wiki.example.com")


@pytest.mark.parametrize(
    ("user_agent", "headers", "expected"),
    [
        # Probes and crawlers as they really send: no Fetch Metadata, so a 401, not a redirect...
        (
            "kube-probe/1.29",
            (("accept", "*/*"),),
            Deny(401, "login_required", login_url=LOGIN_RD + "/", reason="no_cookie"),
        ),
        (
            "ELB-HealthChecker/2.0",
            (),
            Deny(401, "login_required", login_url=LOGIN_RD + "/", reason="no_cookie"),
        ),
        (
            "GoogleHC/1.0",
            (),
            Deny(401, "login_required", login_url=LOGIN_RD + "/", reason="no_cookie"),
        ),
        # ... except one that asks for HTML, which is sent to log in like a browser.
        (
            "Googlebot/2.1",
            (("accept", "text/html,*/*;q=0.8"),),
            Redirect(LOGIN_RD + "/", "login: no_cookie"),
        ),
    ],
)
def test_no_user_agent_is_let_through(
    user_agent: str, headers: tuple[tuple[str, str], ...], expected: Admission
) -> None:
    # SECURITY.md item 9: no special case for health checkers or crawlers.
    request = SUBS.head("/", headers=(("user-agent", user_agent), *headers))
    assert decide(SUBS, request) == expected


def _no_cookie(path: str) -> Deny:
    return Deny(401, "login_required", login_url=LOGIN_RD + path, reason="no_cookie")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # Well-known and health-looking paths are the app's paths: they need a session too.
        ("/favicon.ico", _no_cookie("/favicon.ico")),
        ("/robots.txt", _no_cookie("/robots.txt")),
        ("/.well-known/security.txt", _no_cookie("/.well-known/security.txt")),
        ("/health", _no_cookie("/health")),
        ("/healthz", _no_cookie("/healthz")),
        # Only /.lychgate/healthz exactly is the gateway's health check; below or beside it is
        # authz's namespace (authz answers 404), never the app.
        ("/.lychgate/healthz/x", ToAuthz(RequestTarget("/.lychgate/healthz/x"), APP_HOST)),
        ("/.lychgate/healthz/../x", ToAuthz(RequestTarget("/.lychgate/x"), APP_HOST)),
    ],
)
def test_no_path_is_let_through(target: str, expected: Admission) -> None:
    assert decide(SUBS, SUBS.head(target, headers=FETCH)) == expected
    for user_agent in ("kube-probe/1.29", "ELB-HealthChecker/2.0", "GoogleHC/1.0", "Googlebot/2.1"):
        for headers in ((), NAVIGATE, FETCH):
            request = SUBS.head(target, headers=(("user-agent", user_agent), *headers))
            assert not isinstance(decide(SUBS, request), ToApp)


def test_no_snapshot_is_503_except_health() -> None:
    result = decide(SINGLE, SINGLE.head("/", cookies=[SINGLE.token()]), snapshot=None)
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (503, "unavailable")
    health = decide(SINGLE, SINGLE.head("/.lychgate/healthz"), snapshot=None)
    assert isinstance(health, ToEndpoint)
    assert health.name == "healthz"


class ExplodingVerifier:
    def verify(self, token: str, typ: str) -> VerifiedJWS:
        raise RuntimeError("library bug")


def test_a_verifier_that_crashes_never_admits() -> None:
    request = SINGLE.head("/", cookies=[SINGLE.token()], headers=FETCH)
    assert_refused(decide(SINGLE, request, verifier=ExplodingVerifier()), reason="verify_error")


class BrokenSnapshot:
    @property
    def routing(self) -> str:
        raise RuntimeError("corrupt")


def test_any_exception_is_a_500_never_a_forward() -> None:
    request = SINGLE.head("/", cookies=[SINGLE.token()])
    result = decide(SINGLE, request, snapshot=cast(ConfigSnapshot, BrokenSnapshot()))
    assert isinstance(result, Deny)
    assert (result.status, result.error) == (500, "internal_error")


def test_a_valid_token_is_still_admitted_on_an_old_snapshot() -> None:
    # Keep serving on the last snapshot (DESIGN.md); age is the handler's concern, not a deny.
    old = SINGLE.changed(issued_at=KEY_NOW - timedelta(days=30))
    assert isinstance(
        decide(SINGLE, SINGLE.head("/", cookies=[SINGLE.token()]), snapshot=old), ToApp
    )


def test_the_uncached_keyring_decides_the_same() -> None:
    verifier: Verifier = SINGLE.keyring.public
    assert isinstance(
        decide(SINGLE, SINGLE.head("/", cookies=[SINGLE.token()]), verifier=verifier), ToApp
    )


def test_every_refusal_fails_closed_without_a_forward() -> None:
    outcomes = [
        decide(SINGLE, SINGLE.head("/", cookies=[token], headers=headers))
        for _, token, _ in BAD_TOKENS
        for headers in (NAVIGATE, FETCH, ())
    ]
    assert not any(isinstance(outcome, ToApp | ToAuthz) for outcome in outcomes)
