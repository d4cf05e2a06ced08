"""Admission step 8: another origin's page may not make state-changing requests to an app.

In subdomains mode app B's ``SameSite=Lax`` cookie rides along on a POST that a page of app A
makes to B: cross-site request forgery between sibling apps. Unless B sets
``allow_cross_origin``, the gateway refuses (403) a POST, PUT, PATCH or DELETE that a browser
says comes from elsewhere, and lets the app's own pages, reads and non-browser clients through.
"""

from __future__ import annotations

import logging

import pytest

from gateway.world import APPS, NOW, World, handler_for, make_app
from lychgate.gateway.admission import Admission, Deny, ToApp, admit
from lychgate.gateway.types import Respond
from lychgate.tokens import CachedVerifier

SUBS = World("subdomains")
SINGLE = World("single-host")
OPEN = World("subdomains", apps=(*APPS, make_app("api", allow_cross_origin=True)))
OWN = "https://wiki.example.com"


def request(
    world: World,
    method: str,
    *fields: tuple[str, str],
    host: str = "wiki.example.com",
    app: str = "wiki",
) -> Admission:
    head = world.head(
        "/save", method=method, host=host, cookies=[world.token(app=app)], headers=fields
    )
    return admit(
        head, now=NOW, snapshot=world.snapshot, verifier=CachedVerifier(world.keyring.public)
    )


def refused(result: Admission) -> bool:
    return isinstance(result, Deny) and (result.status, result.error) == (403, "forbidden")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "origin",
    [
        "https://chat.example.com",  # a sibling app: the case SameSite=Lax misses
        "https://auth.example.com",  # the portal
        "https://evil.example",
        "http://wiki.example.com",  # a downgrade
        "https://wiki.example.com:8443",
        "null",  # sandboxed iframes, redirects across origins
        "",
    ],
)
def test_a_write_from_another_origin_is_refused(method: str, origin: str) -> None:
    assert refused(request(SUBS, method, ("origin", origin)))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "origin", [OWN, "https://WIKI.example.com", "https://wiki.example.com:443"]
)
def test_the_apps_own_pages_may_write(method: str, origin: str) -> None:
    result = request(SUBS, method, ("origin", origin), ("sec-fetch-site", "same-origin"))
    assert isinstance(result, ToApp), result


@pytest.mark.parametrize("site", ["same-site", "cross-site", "Same-Site"])
def test_without_origin_fetch_metadata_decides(site: str) -> None:
    assert refused(request(SUBS, "POST", ("sec-fetch-site", site)))


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_fetch_metadata_that_says_here_passes(site: str) -> None:
    assert isinstance(request(SUBS, "POST", ("sec-fetch-site", site)), ToApp)


def test_several_origins_or_sites_are_refused() -> None:
    assert refused(request(SUBS, "POST", ("origin", OWN), ("origin", OWN)))
    assert refused(
        request(SUBS, "POST", ("sec-fetch-site", "same-origin"), ("sec-fetch-site", "none"))
    )


def test_an_origin_that_matches_wins_over_fetch_metadata() -> None:
    # Origin is the stronger statement; a same-origin request never says "same-site".
    assert isinstance(
        request(SUBS, "POST", ("origin", OWN), ("sec-fetch-site", "same-site")), ToApp
    )


def test_a_client_that_is_not_a_browser_is_left_to_the_token() -> None:
    # curl or a script with the cookie sends neither field; forging a request takes a browser.
    assert isinstance(request(SUBS, "POST"), ToApp)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_and_preflights_are_not_checked(method: str) -> None:
    result = request(
        SUBS, method, ("origin", "https://chat.example.com"), ("sec-fetch-site", "same-site")
    )
    assert isinstance(result, ToApp)


def test_an_app_that_allows_cross_origin_writes_gets_them() -> None:
    result = request(
        OPEN, "POST", ("origin", "https://wiki.example.com"), host="api.example.com", app="api"
    )
    assert isinstance(result, ToApp)
    assert result.app.slug == "api"


def test_single_host_compares_with_the_public_origin() -> None:
    host = "localhost:8080"
    assert isinstance(
        request(SINGLE, "POST", ("origin", "http://localhost:8080"), host=host), ToApp
    )
    assert refused(request(SINGLE, "POST", ("origin", "http://localhost:9090"), host=host))
    assert refused(request(SINGLE, "POST", ("origin", "https://evil.example"), host=host))


def test_without_a_token_the_answer_is_still_login() -> None:
    # A forged write without the cookie learns nothing new: 401, as for any request.
    head = SUBS.head(
        "/save",
        method="POST",
        host="wiki.example.com",
        headers=(("origin", "https://evil.example"),),
    )
    result = admit(
        head, now=NOW, snapshot=SUBS.snapshot, verifier=CachedVerifier(SUBS.keyring.public)
    )
    assert not refused(result)


def test_the_refusal_says_why_and_how_to_allow_it() -> None:
    result = request(SUBS, "POST", ("origin", "https://chat.example.com"))
    assert isinstance(result, Deny)
    assert "'https://chat.example.com'" in result.reason
    assert "lychgate app update wiki --allow-cross-origin" in result.reason
    result = request(SUBS, "DELETE", ("sec-fetch-site", "same-site"))
    assert isinstance(result, Deny)
    assert "Sec-Fetch-Site ['same-site']" in result.reason


def test_a_long_origin_is_quoted_short_in_the_reason() -> None:
    # The reason goes to the access log and the operator's log: a client must not be able
    # to write kilobytes into every line of it.
    result = request(SUBS, "POST", ("origin", "https://" + "a" * 5000 + ".example"))
    assert isinstance(result, Deny)
    assert len(result.reason) < 300
    assert "..." in result.reason


def test_the_operator_sees_the_refusal_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    # A 403 comes only after a valid token: a signed-in user, so the log line is bounded by
    # real use; it names the fix for an app that expects cross-origin writes.
    handler, _ = handler_for(SUBS)
    head = SUBS.head(
        "/save",
        method="POST",
        host="wiki.example.com",
        cookies=[SUBS.token()],
        headers=(("origin", "https://chat.example.com"),),
    )
    with caplog.at_level(logging.INFO, logger="lychgate.gateway.admit_handler"):
        decision = handler(head)
    assert isinstance(decision, Respond)
    assert decision.status == 403
    assert b"chat.example.com" not in decision.body  # the page itself says nothing more
    (line,) = [r.getMessage() for r in caplog.records if "refused with 403" in r.getMessage()]
    assert "--allow-cross-origin" in line
    assert line.endswith("(user user-1)")  # whom it refused: the operator can ask them
