"""Admission step 7: a WebSocket handshake to an app comes from the app's own origin.

In subdomains mode all apps share one site, so app B's ``SameSite=Lax`` cookie rides along on
a handshake that a page of app A makes; no CORS stands in front of a socket. The gateway
refuses a handshake whose ``Origin`` is not the routed host's origin (403), and leaves
requests without ``Origin`` (a CLI with the cookie) and plain reads to the token (writes from
another origin are step 8: test_cross_origin_writes.py).
"""

from __future__ import annotations

import pytest

from gateway.world import NOW, World
from lychgate.gateway.admission import Admission, Deny, ToApp, admit
from lychgate.tokens import CachedVerifier

SINGLE = World("single-host")
SUBS = World("subdomains")
UPGRADE = (("connection", "Upgrade"), ("upgrade", "websocket"))


def handshake(world: World, host: str, *origins: str, upgrade: bool = True) -> Admission:
    headers = (*(UPGRADE if upgrade else ()), *(("origin", o) for o in origins))
    request = world.head(
        "/socket", host=host, cookies=[world.token(app="admin", adm=True)], headers=headers
    )
    return admit(
        request, now=NOW, snapshot=world.snapshot, verifier=CachedVerifier(world.keyring.public)
    )


def refused(result: Admission) -> bool:
    return isinstance(result, Deny) and (result.status, result.error) == (403, "forbidden")


@pytest.mark.parametrize(
    "origin",
    [
        "https://admin.example.com",
        "https://ADMIN.example.com",
        "https://admin.example.com:443",
        " https://admin.example.com",
    ],
)
def test_the_apps_own_origin_may_open_a_socket(origin: str) -> None:
    result = handshake(SUBS, "admin.example.com", origin)
    assert isinstance(result, ToApp), result
    assert result.app.slug == "admin"


@pytest.mark.parametrize(
    "origin",
    [
        "https://wiki.example.com",  # another app on the same site: the case SameSite misses
        "https://auth.example.com",  # the portal
        "https://evil.example",
        "http://admin.example.com",  # a downgrade
        "https://admin.example.com:8443",
        "https://admin.example.com.evil.example",
        "null",  # sandboxed iframes, file:
        "",
        "https://admin.example.com/path",
        "https://user@admin.example.com",
    ],
)
def test_another_origin_may_not(origin: str) -> None:
    assert refused(handshake(SUBS, "admin.example.com", origin))


def test_two_origins_are_refused_even_if_one_is_right() -> None:
    own = "https://admin.example.com"
    assert refused(handshake(SUBS, "admin.example.com", own, "https://evil.example"))
    assert refused(handshake(SUBS, "admin.example.com", own, own))


def test_no_origin_is_left_to_the_token() -> None:
    # Browsers always send Origin on a handshake; a CLI or a script with the cookie does not.
    assert isinstance(handshake(SUBS, "admin.example.com"), ToApp)


def test_a_plain_request_with_a_foreign_origin_is_not_this_checks_business() -> None:
    # A cross-origin fetch cannot read the answer without the app's CORS consent.
    result = handshake(SUBS, "admin.example.com", "https://evil.example", upgrade=False)
    assert isinstance(result, ToApp)


def test_single_host_compares_with_the_public_origin() -> None:
    assert isinstance(handshake(SINGLE, "localhost:8080", "http://localhost:8080"), ToApp)
    assert refused(handshake(SINGLE, "localhost:8080", "http://localhost:9090"))
    assert refused(handshake(SINGLE, "localhost:8080", "https://localhost:8080"))
