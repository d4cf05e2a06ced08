"""The reference verifier: JWKS fetched over HTTP, cached, refreshed on an unknown kid."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from demo.fakes import JWKS_URL, NOW, PUBLIC_URL, FakeJwks, assertion, clock
from fixtures.keys import KEY_NOW, forge_jws, make_keyring, signer_private_key
from lychgate.demo.verify import (
    MAX_JWKS_BYTES,
    AssertionVerifier,
    JwksCache,
    JwksUnavailable,
    jwks_url,
)
from lychgate.errors import TokenError
from lychgate.tokens import ASSERTION_TYP, Keyring, Reason
from tokens.helpers import claims_of, flip_byte


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake(keyring: Keyring) -> FakeJwks:
    return FakeJwks(keyring.jwks())


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
async def http(fake: FakeJwks) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        yield client


@pytest.fixture
def jwks(http: httpx.AsyncClient, ticker: Ticker) -> JwksCache:
    return JwksCache(JWKS_URL, http, max_age=300, min_refetch=10, monotonic=ticker)


@pytest.fixture
def verifier(jwks: JwksCache) -> AssertionVerifier:
    return AssertionVerifier(jwks, issuer=PUBLIC_URL, audience="whoami", clock=clock)


async def refused(verifier: AssertionVerifier, token: str) -> str:
    with pytest.raises(TokenError) as info:
        await verifier.verify(token)
    return info.value.reason


def test_jwks_url_is_under_the_public_url() -> None:
    assert jwks_url("https://auth.example.com") == "https://auth.example.com/.lychgate/jwks.json"


async def test_a_good_assertion_verifies(
    verifier: AssertionVerifier, keyring: Keyring, fake: FakeJwks
) -> None:
    claims = await verifier.verify(assertion(keyring, adm=True))
    assert (claims.iss, claims.aud, claims.sub) == (PUBLIC_URL, "whoami", "usr_ada")
    assert (claims.name, claims.email, claims.groups, claims.adm) == (
        "Ada Lovelace",
        "ada@example.test",
        ("staff",),
        True,
    )
    assert claims.exp == KEY_NOW + timedelta(seconds=60)
    await verifier.verify(assertion(keyring))
    assert fake.fetches == 1  # the keys are cached


async def test_a_tampered_assertion_is_refused(
    verifier: AssertionVerifier, keyring: Keyring
) -> None:
    token = assertion(keyring)
    assert await refused(verifier, flip_byte(token, 1, 10)) == Reason.BAD_SIGNATURE
    assert await refused(verifier, flip_byte(token, 2, 5)) == Reason.BAD_SIGNATURE


async def test_an_assertion_for_another_app_is_refused(
    verifier: AssertionVerifier, keyring: Keyring
) -> None:
    assert await refused(verifier, assertion(keyring, app="chat")) == Reason.WRONG_AUDIENCE


async def test_an_assertion_from_another_issuer_is_refused(
    verifier: AssertionVerifier, keyring: Keyring
) -> None:
    token = assertion(keyring, issuer="http://evil.test")
    assert await refused(verifier, token) == Reason.WRONG_ISSUER


async def test_an_expired_assertion_is_refused(
    verifier: AssertionVerifier, keyring: Keyring
) -> None:
    token = assertion(keyring, now=NOW - timedelta(seconds=60))  # exp == NOW: expired
    assert await refused(verifier, token) == Reason.EXPIRED


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384", "EdDSA"])
async def test_only_es256_is_accepted(
    verifier: AssertionVerifier, keyring: Keyring, alg: str
) -> None:
    claims = claims_of(assertion(keyring))
    header = {"alg": alg, "kid": keyring.signer.kid, "typ": ASSERTION_TYP}
    token = forge_jws(signer_private_key(keyring), header, claims)
    assert await refused(verifier, token) == Reason.ALGORITHM_NOT_ALLOWED


async def test_an_unknown_key_is_refused_after_one_refetch(
    verifier: AssertionVerifier, keyring: Keyring, fake: FakeJwks, ticker: Ticker
) -> None:
    await verifier.verify(assertion(keyring))
    ticker.now += 11
    stranger = make_keyring(KEY_NOW - timedelta(minutes=5))
    token = assertion(stranger)
    assert await refused(verifier, token) == Reason.UNKNOWN_KID
    assert fake.fetches == 2  # the first fetch, then one because of the unknown kid
    # A stream of unknown kids does not hammer the endpoint: at most one fetch per min_refetch.
    for _ in range(5):
        assert await refused(verifier, token) == Reason.UNKNOWN_KID
    assert fake.fetches == 2
    ticker.now += 11
    assert await refused(verifier, token) == Reason.UNKNOWN_KID
    assert fake.fetches == 3


async def test_a_rotated_key_is_picked_up_on_its_first_token(
    verifier: AssertionVerifier, keyring: Keyring, fake: FakeJwks, ticker: Ticker
) -> None:
    await verifier.verify(assertion(keyring))
    ticker.now += 60  # well within max_age: only the unknown kid makes the cache refetch
    rotated = make_keyring(KEY_NOW - timedelta(minutes=5))
    fake.jwks = {"keys": keyring.jwks()["keys"] + rotated.jwks()["keys"]}
    claims = await verifier.verify(assertion(rotated))
    assert claims.sub == "usr_ada"
    assert fake.fetches == 2


async def test_keys_are_refetched_after_max_age(
    jwks: JwksCache, keyring: Keyring, fake: FakeJwks, ticker: Ticker
) -> None:
    first = await jwks.current()
    ticker.now += 299
    assert await jwks.current() is first
    ticker.now += 2
    fake.jwks = {"keys": []}
    assert (await jwks.current()).kids == frozenset()
    assert fake.fetches == 2


async def test_stale_keys_are_kept_while_the_jwks_is_down(
    jwks: JwksCache, fake: FakeJwks, ticker: Ticker
) -> None:
    first = await jwks.current()
    fake.status = 502
    ticker.now += 301
    assert await jwks.current() is first


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, None),
        (404, None),
        (200, b"not json"),
        (200, b"[1, 2]"),
        (200, b'{"keys": "nope"}'),
        (200, b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}'),
        (200, b"{" + b" " * MAX_JWKS_BYTES + b"}"),
    ],
)
async def test_an_unusable_jwks_is_unavailable_not_invalid(
    verifier: AssertionVerifier, keyring: Keyring, fake: FakeJwks, status: int, body: bytes | None
) -> None:
    fake.status, fake.body = status, body
    with pytest.raises(JwksUnavailable) as info:
        await verifier.verify(assertion(keyring))
    assert info.value.status == 503


async def test_a_jwks_holding_a_private_key_is_refused(
    verifier: AssertionVerifier, keyring: Keyring, fake: FakeJwks
) -> None:
    private = json.loads(keyring.signer.private_jwk.reveal())
    fake.jwks = {"keys": [private]}
    with pytest.raises(JwksUnavailable):
        await verifier.verify(assertion(keyring))


async def test_an_unreachable_jwks_is_unavailable(keyring: Keyring) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        verifier = AssertionVerifier(
            JwksCache(JWKS_URL, client), issuer=PUBLIC_URL, audience="whoami", clock=clock
        )
        with pytest.raises(JwksUnavailable, match="ConnectError"):
            await verifier.verify(assertion(keyring))


async def test_concurrent_requests_on_a_cold_cache_fetch_once(
    verifier: AssertionVerifier, keyring: Keyring, fake: FakeJwks
) -> None:
    tokens = [assertion(keyring, sub=f"usr_{i}") for i in range(10)]
    claims = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [c.sub for c in claims] == [f"usr_{i}" for i in range(10)]
    assert fake.fetches == 1
