"""Fakes for the demo tests: a JWKS endpoint in process, and assertions as the gateway signs them.

:class:`FakeJwks` is an ``httpx`` transport that serves one JWK Set at one URL and counts the
fetches, so tests can see when the cache goes back to the network. :func:`assertion` signs an
identity assertion with a real ES256 keyring (``tests/fixtures/keys.py``) at the fixed
:data:`~fixtures.keys.KEY_NOW`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from fixtures.keys import KEY_NOW
from lychgate.ids import AppSlug, UserId
from lychgate.tokens import IdentityAssertion, Keyring, encode_assertion

PUBLIC_URL: Final = "http://lychgate.test:8080"
JWKS_URL: Final = PUBLIC_URL + "/.lychgate/jwks.json"
#: The verifier's "now": one second after the assertions are issued.
NOW: Final = KEY_NOW + timedelta(seconds=1)


def clock() -> datetime:
    return NOW


class FakeJwks:
    """Serves ``jwks`` at :data:`JWKS_URL` (404 elsewhere); ``status``/``body`` fake failures."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self.jwks: Mapping[str, Any] = jwks
        self.status = 200
        self.body: bytes | None = None  # served instead of the JSON when set
        self.fetches = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) != JWKS_URL:
            return httpx.Response(404)
        self.fetches += 1
        if self.body is not None:
            return httpx.Response(self.status, content=self.body)
        return httpx.Response(self.status, json=dict(self.jwks))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def assertion(
    keyring: Keyring,
    *,
    app: str = "whoami",
    name: str = "Ada Lovelace",
    email: str | None = "ada@example.test",
    sub: str = "usr_ada",
    issuer: str = PUBLIC_URL,
    now: datetime = KEY_NOW,
    adm: bool = False,
) -> str:
    """A valid identity assertion for ``app``, issued at ``now`` for 60 s."""
    claims = IdentityAssertion.issue(
        issuer=issuer,
        app=AppSlug(app),
        sub=UserId(sub),
        email=email,
        name=name,
        groups=("staff",),
        adm=adm,
        now=now,
    )
    return encode_assertion(keyring, claims)
