"""The gateway's verification cache."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fixtures.keys import ISSUER, KEY_NOW, make_app_token, make_keyring
from lychgate.errors import TokenError, UsageError
from lychgate.ids import AppSlug, UserId
from lychgate.tokens import (
    ASSERTION_TYP,
    CachedVerifier,
    IdentityAssertion,
    Keyring,
    PublicKeyring,
    Reason,
    encode_assertion,
    verify_app_token,
    verify_assertion,
)

from .helpers import expect, flip_byte


def _verify(verifier: CachedVerifier, token: str, **kwargs: object) -> object:
    now = kwargs.get("now", KEY_NOW)
    return verify_app_token(verifier, token, now=now, issuer=ISSUER)  # type: ignore[arg-type]


def test_second_verification_is_a_hit(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public)
    token = make_app_token(keyring)
    first = verify_app_token(verifier, token, now=KEY_NOW, issuer=ISSUER)
    second = verify_app_token(verifier, token, now=KEY_NOW, issuer=ISSUER)
    assert first == second
    assert (verifier.misses, verifier.hits, len(verifier)) == (1, 1, 1)


def test_expiry_is_checked_on_every_hit(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public)
    token = make_app_token(keyring, ttl=timedelta(minutes=5))
    _verify(verifier, token)
    with pytest.raises(TokenError) as info:
        _verify(verifier, token, now=KEY_NOW + timedelta(minutes=5))
    expect(Reason.EXPIRED, info)
    assert verifier.hits == 1
    # ... and the issuer and app are checked on every hit too.
    with pytest.raises(TokenError) as info:
        verify_app_token(verifier, token, now=KEY_NOW, issuer="https://other")
    expect(Reason.WRONG_ISSUER, info)
    with pytest.raises(TokenError) as info:
        verify_app_token(verifier, token, now=KEY_NOW, issuer=ISSUER, app=AppSlug("admin"))
    expect(Reason.WRONG_AUDIENCE, info)


def test_not_yet_valid_is_checked_on_every_hit(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public)
    later = KEY_NOW + timedelta(minutes=10)
    token = make_app_token(keyring, now=later)
    _verify(verifier, token, now=later)
    with pytest.raises(TokenError) as info:
        _verify(verifier, token, now=KEY_NOW)
    expect(Reason.NOT_YET_VALID, info)


def test_failures_are_never_cached(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public)
    bad = flip_byte(make_app_token(keyring), 2)
    for _ in range(3):
        with pytest.raises(TokenError) as info:
            _verify(verifier, bad)
        expect(Reason.BAD_SIGNATURE, info)
    assert (verifier.hits, verifier.misses, len(verifier)) == (0, 3, 0)
    with pytest.raises(TokenError):
        _verify(verifier, make_app_token(make_keyring()))
    assert len(verifier) == 0


def test_cached_token_keeps_its_type(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public)
    assertion = encode_assertion(
        keyring,
        IdentityAssertion.issue(
            issuer=ISSUER, app=AppSlug("wiki"), sub=UserId("u"), email=None, name="", now=KEY_NOW
        ),
    )
    verify_assertion(verifier, assertion, now=KEY_NOW, issuer=ISSUER, audience=AppSlug("wiki"))
    assert verifier.verify(assertion, ASSERTION_TYP).typ == ASSERTION_TYP
    with pytest.raises(TokenError) as info:
        _verify(verifier, assertion)
    expect(Reason.WRONG_TYPE, info)
    assert verifier.hits == 2


def test_cache_is_bounded_lru(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public, max_entries=3)
    tokens = [make_app_token(keyring, sid=f"s{i}") for i in range(5)]
    for token in tokens[:3]:
        _verify(verifier, token)
    _verify(verifier, tokens[0])  # touch: tokens[1] is now the oldest
    _verify(verifier, tokens[3])
    assert len(verifier) == 3
    misses = verifier.misses
    _verify(verifier, tokens[0])
    _verify(verifier, tokens[3])
    assert verifier.misses == misses
    _verify(verifier, tokens[1])
    assert verifier.misses == misses + 1


def test_default_bound_and_bad_bound() -> None:
    assert CachedVerifier(make_keyring().public)._max_entries == 10_000
    with pytest.raises(UsageError):
        CachedVerifier(make_keyring().public, max_entries=0)


def test_changed_key_set_drops_the_cache(keyring: Keyring) -> None:
    verifier = CachedVerifier(keyring.public)
    token = make_app_token(keyring)
    _verify(verifier, token)
    assert len(verifier) == 1
    # The same keys again (a feed refresh) keep the cache.
    assert verifier.update_keys(PublicKeyring.from_jwks(keyring.jwks())) is False
    assert len(verifier) == 1
    # The signing key withdrawn: the cached token must not survive it.
    other = make_keyring()
    assert verifier.update_keys(other.public) is True
    assert len(verifier) == 0
    assert verifier.keys == other.public
    with pytest.raises(TokenError) as info:
        _verify(verifier, token)
    expect(Reason.UNKNOWN_KID, info)
