"""The identity assertion sent upstream in X-Lychgate-Assertion."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fixtures.keys import ISSUER, KEY_NOW, forge_jws, make_app_token, signer_private_key
from lychgate.errors import TokenError, UsageError
from lychgate.ids import AppSlug, UserId
from lychgate.tokens import (
    ASSERTION_TTL,
    ASSERTION_TYP,
    IdentityAssertion,
    Keyring,
    PublicKeyring,
    Reason,
    encode_assertion,
    verify_assertion,
)

from .helpers import claims_of, expect, header_of

WIKI = AppSlug("wiki")


def _assertion() -> IdentityAssertion:
    return IdentityAssertion.issue(
        issuer=ISSUER,
        app=WIKI,
        sub=UserId("user-1"),
        email="ada@example.com",
        name="Ada Lovelace",
        groups=("staff", "admins"),
        adm=True,
        now=KEY_NOW,
    )


def _refused(
    verifier: Keyring | PublicKeyring, token: str, **kwargs: object
) -> pytest.ExceptionInfo[TokenError]:
    options: dict[str, object] = {"now": KEY_NOW, "issuer": ISSUER, "audience": WIKI, **kwargs}
    with pytest.raises(TokenError) as info:
        verify_assertion(verifier, token, **options)  # type: ignore[arg-type]
    return info


def test_round_trip(keyring: Keyring, public_keyring: PublicKeyring) -> None:
    claims = _assertion()
    assert claims.exp - claims.iat == ASSERTION_TTL == timedelta(seconds=60)
    token = encode_assertion(keyring, claims)
    assert header_of(token)["typ"] == ASSERTION_TYP
    assert claims_of(token)["aud"] == "wiki"
    assert claims_of(token)["groups"] == ["staff", "admins"]
    for verifier in (keyring, public_keyring):
        got = verify_assertion(verifier, token, now=KEY_NOW, issuer=ISSUER, audience=WIKI)
        assert got == claims


def test_optional_fields(keyring: Keyring) -> None:
    claims = replace(_assertion(), email=None, name="", groups=())
    token = encode_assertion(keyring, claims)
    assert "email" not in claims_of(token)
    assert verify_assertion(keyring, token, now=KEY_NOW, issuer=ISSUER, audience=WIKI) == claims


def test_assertion_lives_sixty_seconds(keyring: Keyring) -> None:
    token = encode_assertion(keyring, _assertion())
    last = KEY_NOW + timedelta(seconds=59)
    assert verify_assertion(keyring, token, now=last, issuer=ISSUER, audience=WIKI)
    expect(Reason.EXPIRED, _refused(keyring, token, now=KEY_NOW + timedelta(seconds=60)))
    expect(Reason.EXPIRED, _refused(keyring, token, now=KEY_NOW + timedelta(seconds=61)))


def test_wrong_audience_is_refused(keyring: Keyring) -> None:
    token = encode_assertion(keyring, _assertion())
    expect(Reason.WRONG_AUDIENCE, _refused(keyring, token, audience=AppSlug("admin")))
    expect(Reason.WRONG_AUDIENCE, _refused(keyring, token, audience=AppSlug("WIKI")))


def test_wrong_issuer_is_refused(keyring: Keyring) -> None:
    token = encode_assertion(keyring, replace(_assertion(), iss="https://evil.example"))
    expect(Reason.WRONG_ISSUER, _refused(keyring, token))


def test_array_audience_is_refused(keyring: Keyring) -> None:
    claims = {**claims_of(encode_assertion(keyring, _assertion())), "aud": ["wiki", "admin"]}
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": ASSERTION_TYP}
    token = forge_jws(signer_private_key(keyring), header, claims)
    expect(Reason.INVALID_CLAIM, _refused(keyring, token))


@pytest.mark.parametrize("claim", ["aud", "sub", "name", "groups", "adm", "iss", "exp", "iat"])
def test_required_claims(keyring: Keyring, claim: str) -> None:
    claims = claims_of(encode_assertion(keyring, _assertion()))
    del claims[claim]
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": ASSERTION_TYP}
    token = forge_jws(signer_private_key(keyring), header, claims)
    expect(Reason.MISSING_CLAIM, _refused(keyring, token))


@pytest.mark.parametrize(("claim", "value"), [("groups", [1]), ("groups", "staff"), ("email", 3)])
def test_claim_types(keyring: Keyring, claim: str, value: object) -> None:
    claims = {**claims_of(encode_assertion(keyring, _assertion())), claim: value}
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": ASSERTION_TYP}
    token = forge_jws(signer_private_key(keyring), header, claims)
    expect(Reason.INVALID_CLAIM, _refused(keyring, token))


def test_app_token_is_not_an_assertion(keyring: Keyring) -> None:
    expect(Reason.WRONG_TYPE, _refused(keyring, make_app_token(keyring)))


def test_born_expired_assertion_is_a_bug(keyring: Keyring) -> None:
    with pytest.raises(UsageError):
        encode_assertion(keyring, replace(_assertion(), exp=KEY_NOW))
