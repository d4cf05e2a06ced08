"""How an upstream app verifies ``X-Lychgate-Assertion``: the reference implementation.

Theory of operation
-------------------
The gateway signs, for every forwarded request, a 60-second identity assertion: a compact JWS
(ES256) whose ``iss`` is the deployment's public URL and whose ``aud`` is the app's slug. Its
public keys are published at ``<public_url>/.lychgate/jwks.json``. An app trusts *only* what
verifies; ``X-Lychgate-User`` and ``X-Lychgate-Email`` are conveniences that are true only as
long as nothing but the gateway can reach the app.

1. :class:`JwksCache` fetches the JWK Set over HTTP, exactly as an app on another machine would,
   imports it strictly (:meth:`PublicKeyring.from_jwks`: P-256 public keys with a ``kid``, no
   private members), and keeps it for ``max_age`` (authz sends ``max-age=300``). When a token
   names a ``kid`` the cache does not know, the keys were probably rotated: the cache fetches
   again, but at most once per ``min_refetch``, so a stream of forged ``kid`` values cannot make
   the app hammer the JWKS endpoint.
2. :class:`AssertionVerifier` checks, through :func:`lychgate.tokens.verify_assertion`: the
   algorithm is ES256 and nothing else (RFC 8725 section 3.1: never from the token's say-so),
   the ``typ`` header, the signature, ``exp`` (RFC 7519 section 4.1.4, no leeway), ``iat``,
   ``iss`` (section 4.1.1) and ``aud`` equal to this app's slug (section 4.1.3: an assertion
   minted for another app is refused).

A JWKS that cannot be fetched is :class:`JwksUnavailable` (a 503: our fault, not the user's);
a token that fails a check is a :class:`~lychgate.errors.TokenError` whose ``reason`` names it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import httpx

from lychgate.errors import ConfigError, LychgateError, TokenError
from lychgate.ids import AppSlug
from lychgate.tokens import IdentityAssertion, PublicKeyring, Reason, verify_assertion

log = logging.getLogger(__name__)

JWKS_PATH: Final = "/.lychgate/jwks.json"
MAX_JWKS_BYTES: Final = 64 * 1024  # a handful of keys is a few KiB; refuse anything huge
DEFAULT_MAX_AGE: Final = 300.0  # seconds, as authz's Cache-Control says
DEFAULT_MIN_REFETCH: Final = 10.0  # seconds between fetches triggered by unknown kids


class JwksUnavailable(LychgateError):
    """The JWK Set could not be fetched or parsed: the app cannot verify anyone right now."""

    status = 503


def jwks_url(public_url: str) -> str:
    """Where a deployment publishes its keys."""
    return public_url.rstrip("/") + JWKS_PATH


class JwksCache:
    """The deployment's public keys, fetched over HTTP and cached (see the module docstring)."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        min_refetch: float = DEFAULT_MIN_REFETCH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = client
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._monotonic = monotonic
        self._keyring: PublicKeyring | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()  # one fetch at a time; the others reuse its result

    async def current(self) -> PublicKeyring:
        """The cached keys, fetched first if there are none or they are older than max_age.

        If a refresh of keys we already hold fails, the old keys are kept (and the failure
        logged): the gateway's keys rarely change, and the app stays up while authz restarts.
        """
        if self._keyring is not None and self._age() < self._max_age:
            return self._keyring
        async with self._lock:
            if self._keyring is not None and self._age() < self._max_age:
                return self._keyring
            try:
                return await self._fetch()
            except JwksUnavailable as exc:
                if self._keyring is None:
                    raise
                log.warning("keeping the cached JWKS: %s", exc)
                return self._keyring

    async def refresh(self) -> PublicKeyring:
        """Fetch again because a token named an unknown kid, unless we fetched very recently."""
        async with self._lock:
            if self._keyring is not None and self._age() < self._min_refetch:
                return self._keyring
            return await self._fetch()

    def _age(self) -> float:
        return self._monotonic() - self._fetched_at

    async def _fetch(self) -> PublicKeyring:
        # No redirects (httpx's default): the keys must come from exactly this URL.
        try:
            async with self._client.stream("GET", self.url) as response:
                if response.status_code != 200:
                    raise JwksUnavailable(f"{self.url} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksUnavailable(f"{self.url} sent more than {MAX_JWKS_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"cannot fetch {self.url}: {type(exc).__name__}") from None
        try:
            document = json.loads(body)
            keyring = PublicKeyring.from_jwks(document if isinstance(document, dict) else {})
        except (ValueError, ConfigError) as exc:
            raise JwksUnavailable(f"{self.url} is not a usable JWK Set: {exc}") from None
        self._keyring = keyring
        self._fetched_at = self._monotonic()
        log.info("fetched %d key(s) from %s", len(keyring.kids), self.url)
        return keyring


def utc_now() -> datetime:
    """The verifiers' default clock."""
    return datetime.now(UTC)


class AssertionVerifier:
    """Verifies ``X-Lychgate-Assertion`` for one app (its slug is the audience)."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._jwks = jwks
        self.issuer = issuer
        self.audience = AppSlug(audience)
        self._clock = clock

    async def verify(self, token: str) -> IdentityAssertion:
        """The verified claims of ``token``.

        Raises :class:`~lychgate.errors.TokenError` (``reason`` says which check failed) or
        :class:`JwksUnavailable`.
        """
        keyring = await self._jwks.current()
        try:
            return self._check(keyring, token)
        except TokenError as exc:
            if exc.reason != Reason.UNKNOWN_KID:
                raise
        # A kid we have not seen: the deployment may have rotated its keys since we fetched.
        return self._check(await self._jwks.refresh(), token)

    def _check(self, keyring: PublicKeyring, token: str) -> IdentityAssertion:
        return verify_assertion(
            keyring, token, now=self._clock(), issuer=self.issuer, audience=self.audience
        )
