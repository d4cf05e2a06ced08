"""The app token: round trips, time edges, issuer and app checks, and key windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from fixtures.keys import (
    ISSUER,
    KEY_NOW,
    MAX_TOKEN_LIFE,
    app_claims,
    forge_jws,
    make_app_token,
    make_keyring,
    make_signing_keys,
    signer_private_key,
)
from lychgate.errors import TokenError, UsageError
from lychgate.ids import AppSlug, UserId
from lychgate.tokens import (
    APP_TOKEN_TYP,
    CLOCK_SKEW,
    IdentityAssertion,
    Keyring,
    PublicKeyring,
    Reason,
    encode_app_token,
    encode_assertion,
    verify_app_token,
)

from .helpers import claims_of, expect, header_of

WIKI = AppSlug("wiki")
SECOND = timedelta(seconds=1)


def _refused(
    keyring: Keyring | PublicKeyring,
    token: str,
    *,
    now: datetime = KEY_NOW,
    issuer: str = ISSUER,
    app: AppSlug | None = None,
) -> pytest.ExceptionInfo[TokenError]:
    with pytest.raises(TokenError) as info:
        verify_app_token(keyring, token, now=now, issuer=issuer, app=app)
    return info


def test_round_trip(keyring: Keyring, public_keyring: PublicKeyring) -> None:
    claims = app_claims(adm=True)
    token = encode_app_token(keyring, claims)
    assert header_of(token) == {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    assert set(claims_of(token)) == {"sid", "sub", "app", "adm", "iat", "exp", "iss"}
    verified = replace(claims, kid=keyring.signer.kid)  # verification says which key signed
    for verifier in (keyring, public_keyring):
        assert verify_app_token(verifier, token, now=KEY_NOW, issuer=ISSUER, app=WIKI) == verified
        assert verify_app_token(verifier, token, now=KEY_NOW, issuer=ISSUER) == verified


def test_sub_second_times_round_down(keyring: Keyring) -> None:
    claims = app_claims(now=KEY_NOW + timedelta(microseconds=900_000))
    token = encode_app_token(keyring, claims)
    got = verify_app_token(keyring, token, now=claims.iat, issuer=ISSUER)
    assert got.iat == KEY_NOW
    assert got.exp == KEY_NOW + timedelta(hours=1)


def test_exp_edges(keyring: Keyring) -> None:
    token = make_app_token(keyring, ttl=timedelta(hours=1))
    exp = KEY_NOW + timedelta(hours=1)
    assert verify_app_token(keyring, token, now=exp - SECOND, issuer=ISSUER)
    assert verify_app_token(keyring, token, now=exp - timedelta(microseconds=1), issuer=ISSUER)
    # RFC 7519 section 4.1.4: "MUST be before", so exactly at exp is too late. No leeway.
    expect(Reason.EXPIRED, _refused(keyring, token, now=exp))
    expect(Reason.EXPIRED, _refused(keyring, token, now=exp + SECOND))
    expect(Reason.EXPIRED, _refused(keyring, token, now=exp + timedelta(days=365)))


def _forged(keyring: Keyring, **changes: object) -> str:
    claims = {
        "iss": ISSUER,
        "sub": "user-1",
        "sid": "sess-1",
        "app": "wiki",
        "adm": False,
        "iat": int(KEY_NOW.timestamp()),
        "exp": int((KEY_NOW + timedelta(hours=1)).timestamp()),
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    return forge_jws(signer_private_key(keyring), header, claims)


def test_nbf_edges(keyring: Keyring) -> None:
    nbf = KEY_NOW + timedelta(minutes=10)
    token = _forged(keyring, nbf=int(nbf.timestamp()))
    # RFC 7519 section 4.1.5, with CLOCK_SKEW of leeway for the issuer's clock running ahead.
    assert verify_app_token(keyring, token, now=nbf, issuer=ISSUER)
    assert verify_app_token(keyring, token, now=nbf + SECOND, issuer=ISSUER)
    assert verify_app_token(keyring, token, now=nbf - CLOCK_SKEW, issuer=ISSUER)
    expect(Reason.NOT_YET_VALID, _refused(keyring, token, now=nbf - CLOCK_SKEW - SECOND))
    expect(Reason.NOT_YET_VALID, _refused(keyring, token, now=KEY_NOW))


def test_iat_in_the_future_is_refused(keyring: Keyring) -> None:
    token = make_app_token(keyring, now=KEY_NOW + timedelta(minutes=1))
    assert verify_app_token(keyring, token, now=KEY_NOW + timedelta(minutes=1), issuer=ISSUER)
    skewed = KEY_NOW + timedelta(minutes=1) - CLOCK_SKEW
    assert verify_app_token(keyring, token, now=skewed, issuer=ISSUER)
    expect(Reason.NOT_YET_VALID, _refused(keyring, token, now=skewed - SECOND))


def test_wrong_issuer_is_refused(keyring: Keyring) -> None:
    token = make_app_token(keyring, issuer="https://other.example")
    expect(Reason.WRONG_ISSUER, _refused(keyring, token))
    expect(Reason.WRONG_ISSUER, _refused(keyring, make_app_token(keyring), issuer=ISSUER + "/"))


def test_token_for_another_app_is_refused_when_app_is_given(keyring: Keyring) -> None:
    token = make_app_token(keyring, app="admin")
    expect(Reason.WRONG_AUDIENCE, _refused(keyring, token, app=WIKI))
    expect(Reason.WRONG_AUDIENCE, _refused(keyring, token, app=AppSlug("Admin")))
    assert verify_app_token(keyring, token, now=KEY_NOW, issuer=ISSUER).app == "admin"


def test_identity_assertion_is_not_an_app_token(keyring: Keyring) -> None:
    assertion = encode_assertion(
        keyring,
        IdentityAssertion.issue(
            issuer=ISSUER, app=WIKI, sub=UserId("user-1"), email=None, name="A", now=KEY_NOW
        ),
    )
    expect(Reason.WRONG_TYPE, _refused(keyring, assertion))
    expect(Reason.WRONG_TYPE, _refused(keyring, assertion, app=WIKI))


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "lychgate-id+jwt", "LYCHGATE-APP+JWT", 1])
def test_wrong_typ_is_refused(keyring: Keyring, typ: object) -> None:
    header: dict[str, object] = {"alg": "ES256", "kid": keyring.signer.kid}
    if typ is not None:
        header["typ"] = typ
    token = forge_jws(signer_private_key(keyring), header, claims_of(make_app_token(keyring)))
    expect(Reason.WRONG_TYPE, _refused(keyring, token))


@pytest.mark.parametrize("claim", ["sid", "sub", "app", "adm", "iat", "exp", "iss"])
def test_every_claim_is_required(keyring: Keyring, claim: str) -> None:
    expect(Reason.MISSING_CLAIM, _refused(keyring, _forged(keyring, **{claim: None})))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sid", ""),
        ("sid", 5),
        ("sub", ["user-1"]),
        ("app", {"slug": "wiki"}),
        ("adm", 1),
        ("adm", "true"),
        ("iss", 0),
        ("exp", "2030-01-01"),
        ("exp", 1.5e9),
        ("exp", True),
        ("exp", -1),
        ("exp", 2**60),
        ("iat", "now"),
        ("nbf", "later"),
    ],
)
def test_claims_of_the_wrong_type_are_refused(keyring: Keyring, claim: str, value: object) -> None:
    expect(Reason.INVALID_CLAIM, _refused(keyring, _forged(keyring, **{claim: value})))


def test_unknown_extra_claims_are_ignored(keyring: Keyring) -> None:
    token = _forged(keyring, jti="x", extra={"a": [1, 2]})
    assert verify_app_token(keyring, token, now=KEY_NOW, issuer=ISSUER).sid == "sess-1"


def test_retired_key_verifies_within_verify_until_only() -> None:
    keys = make_signing_keys(retired=1)  # the old key signed until KEY_NOW
    then = KEY_NOW - timedelta(seconds=30)
    old = Keyring(keys, then)
    token = make_app_token(old, now=then, ttl=timedelta(days=2))
    current = Keyring(keys, KEY_NOW)
    assert header_of(token)["kid"] != current.signer.kid
    assert verify_app_token(current, token, now=KEY_NOW, issuer=ISSUER).sid == "sess-1"

    verify_until = keys[0].verify_until
    assert verify_until == KEY_NOW + MAX_TOKEN_LIFE
    inside = verify_until - SECOND
    assert verify_app_token(Keyring(keys, inside), token, now=inside, issuer=ISSUER)
    past = Keyring(keys, verify_until)
    expect(Reason.UNKNOWN_KID, _refused(past, token, now=verify_until))
    gateway = PublicKeyring.from_jwks(past.jwks())
    expect(Reason.UNKNOWN_KID, _refused(gateway, token, now=verify_until))


def test_token_from_another_deployment_is_refused(keyring: Keyring) -> None:
    expect(Reason.UNKNOWN_KID, _refused(keyring, make_app_token(make_keyring())))


def test_encoding_a_born_expired_token_is_a_bug(keyring: Keyring) -> None:
    with pytest.raises(UsageError):
        encode_app_token(keyring, replace(app_claims(), exp=KEY_NOW))


def test_naive_now_is_a_bug(keyring: Keyring) -> None:
    token = make_app_token(keyring)
    with pytest.raises(UsageError):
        verify_app_token(keyring, token, now=KEY_NOW.replace(tzinfo=None), issuer=ISSUER)
