"""whoami over ASGI: the verified claims, or "assertion invalid: <reason>" and a 401."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest

from demo.fakes import JWKS_URL, NOW, PUBLIC_URL, FakeJwks, assertion, clock
from fixtures.keys import KEY_NOW, make_keyring
from lychgate.demo.verify import AssertionVerifier, JwksCache
from lychgate.demo.whoami import create_whoami
from lychgate.tokens import Keyring
from tokens.helpers import flip_byte

GATEWAY_HEADERS = {
    "x-lychgate-user": "usr_ada",
    "x-lychgate-email": "ada@example.test",
    "x-forwarded-for": "192.0.2.7",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "lychgate.test:8080",
    "x-request-id": "5b1e0c9a7d2f4e8b3a6c1d0e",
}


@pytest.fixture
def fake(keyring: Keyring) -> FakeJwks:
    return FakeJwks(keyring.jwks())


@pytest.fixture
async def client(fake: FakeJwks) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as jwks_http:
        verifier = AssertionVerifier(
            JwksCache(JWKS_URL, jwks_http), issuer=PUBLIC_URL, audience="whoami", clock=clock
        )
        app = create_whoami(verifier)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://whoami") as c:
            yield c


async def get_json(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = dict(GATEWAY_HEADERS)
    if token is not None:
        headers["x-lychgate-assertion"] = token
    return await client.get("/any/path", params={"format": "json"}, headers=headers)


async def test_verified_claims_and_headers_as_json(
    client: httpx.AsyncClient, keyring: Keyring
) -> None:
    r = await get_json(client, assertion(keyring, adm=True))
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["verified"] is True
    assert body["path"] == "/any/path"
    assert body["claims"] == {
        "iss": PUBLIC_URL,
        "aud": "whoami",
        "sub": "usr_ada",
        "name": "Ada Lovelace",
        "email": "ada@example.test",
        "groups": ["staff"],
        "adm": True,
        "iat": KEY_NOW.isoformat(),
        "exp": (KEY_NOW + timedelta(seconds=60)).isoformat(),
    }
    for name, value in GATEWAY_HEADERS.items():
        assert body["headers"][name] == value


async def test_verified_claims_as_html(client: httpx.AsyncClient, keyring: Keyring) -> None:
    headers = GATEWAY_HEADERS | {"x-lychgate-assertion": assertion(keyring)}
    r = await client.get("/", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "Assertion verified." in r.text
    assert "Ada Lovelace" in r.text
    assert "192.0.2.7" in r.text


def tampered(keyring: Keyring) -> str:
    return flip_byte(assertion(keyring), 1, 12)


def other_audience(keyring: Keyring) -> str:
    return assertion(keyring, app="chat")


def expired(keyring: Keyring) -> str:
    return assertion(keyring, now=NOW - timedelta(seconds=61))


def unknown_key(keyring: Keyring) -> str:
    return assertion(make_keyring(KEY_NOW - timedelta(minutes=1)))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (tampered, "bad_signature"),
        (other_audience, "wrong_audience"),
        (expired, "expired"),
        (unknown_key, "unknown_kid"),
    ],
)
async def test_a_bad_assertion_is_reported_with_its_reason(
    client: httpx.AsyncClient, keyring: Keyring, make: Callable[[Keyring], str], reason: str
) -> None:
    token = make(keyring)
    r = await get_json(client, token)
    assert r.status_code == 401
    body = r.json()
    assert body["verified"] is False
    assert body["error"] == f"assertion invalid: {reason}"
    assert "claims" not in body
    page = await client.get("/", headers={"x-lychgate-assertion": token})
    assert page.status_code == 200
    assert f"assertion invalid: {reason}" in page.text
    assert "Assertion verified." not in page.text


async def test_a_missing_assertion_is_invalid(client: httpx.AsyncClient) -> None:
    r = await get_json(client, None)
    assert r.status_code == 401
    assert r.json()["error"] == "assertion invalid: missing"


async def test_jwks_down_is_a_503_not_a_401(
    client: httpx.AsyncClient, keyring: Keyring, fake: FakeJwks
) -> None:
    fake.status = 500
    r = await get_json(client, assertion(keyring))
    assert r.status_code == 503
    assert r.json()["error"] == "assertion not checked: JWKS unavailable"


async def test_header_values_are_escaped(client: httpx.AsyncClient, keyring: Keyring) -> None:
    hostile = "<script>alert(1)</script>"
    token = assertion(keyring, name=hostile)
    r = await client.get("/", headers={"x-lychgate-assertion": token, "x-lychgate-user": hostile})
    assert "<script>" not in r.text
    assert "&lt;script&gt;" in r.text


async def test_only_get_and_head(client: httpx.AsyncClient) -> None:
    assert (await client.head("/")).status_code == 200
    assert (await client.post("/")).status_code == 405
