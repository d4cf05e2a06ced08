"""A missing or unusable signing key denies (SECURITY.md item 9): no token, a 503.

The store here never got a signing key (conftest's ``ctx`` makes one; this module's does not).
authz still starts, the keyring being empty, but a handoff redemption mints no token and the
JWKS is not served half-empty for caches to keep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from authz.conftest import Clock, live_session
from fixtures.store import T0, make_signing_key
from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import issue_handoff
from lychgate.config import Settings
from lychgate.deployment.secrets import DeploymentSecrets
from lychgate.events import InProcessBus
from lychgate.gateway.feed_http import REDEEM_PATH
from lychgate.store import Store
from lychgate.tokens import generate_signing_key

JWKS = "/.lychgate/jwks.json"
UNAVAILABLE = {"error": "unavailable"}


@pytest.fixture
async def ctx(
    store: Store, settings: Settings, secrets: DeploymentSecrets, clock: Clock
) -> AsyncIterator[AuthzContext]:
    """conftest's context, minus the signing key."""
    bus = InProcessBus()
    try:
        yield AuthzContext(settings=settings, store=store, bus=bus, secrets=secrets, clock=clock)
    finally:
        await bus.close()


async def handoff_code(ctx: AuthzContext) -> str:
    """A valid code for a live session and an app its user may open."""
    slug, session = await live_session(ctx)
    return await issue_handoff(ctx, session.id, slug)


def assert_unavailable(r: httpx.Response) -> None:
    assert (r.status_code, r.json()) == (503, UNAVAILABLE)
    assert r.headers["cache-control"] == "no-store"


async def test_without_a_signing_key_a_handoff_mints_no_token(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    r = await client.post(REDEEM_PATH, json={"code": await handoff_code(ctx)})
    assert_unavailable(r)
    assert "token" not in r.text


async def test_a_key_outage_does_not_spend_the_code(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    """The keyring is loaded before the code is redeemed: once a key is back, the same code
    still works, so nobody has to sign in again because of the outage."""
    code = await handoff_code(ctx)
    assert_unavailable(await client.post(REDEEM_PATH, json={"code": code}))
    await ctx.store.signing_keys.add(generate_signing_key(T0))
    r = await client.post(REDEEM_PATH, json={"code": code})
    assert r.status_code == 200, r.text
    assert r.json()["token"]


async def test_without_a_signing_key_the_jwks_is_503_not_half_a_set(
    client: httpx.AsyncClient,
) -> None:
    """Not the assertion key alone, with a max-age that would keep it for five minutes."""
    assert_unavailable(await client.get(JWKS))


async def test_a_retired_key_still_verifies_but_signs_nothing(
    ctx: AuthzContext, client: httpx.AsyncClient
) -> None:
    """Rotation left no active key: outstanding tokens still verify, no new one is minted."""
    old = generate_signing_key(T0 - timedelta(days=1))
    await ctx.store.signing_keys.add(old)
    await ctx.store.signing_keys.retire(
        old.kid, retired_at=T0 - timedelta(minutes=1), verify_until=T0 + timedelta(hours=1)
    )
    jwks = await client.get(JWKS)
    assert jwks.status_code == 200
    assert old.kid in {k["kid"] for k in jwks.json()["keys"]}
    assert_unavailable(await client.post(REDEEM_PATH, json={"code": await handoff_code(ctx)}))


async def test_an_unusable_key_fails_closed(ctx: AuthzContext, client: httpx.AsyncClient) -> None:
    """A stored key that does not import (a damaged row) is a 503 on both routes."""
    await ctx.store.signing_keys.add(make_signing_key())
    assert_unavailable(await client.post(REDEEM_PATH, json={"code": await handoff_code(ctx)}))
    assert_unavailable(await client.get(JWKS))
