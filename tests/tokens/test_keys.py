"""Signing keys, keyrings, rotation and JWKS."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from joserfc.jwk import ECKey

from fixtures.keys import (
    ISSUER,
    KEY_NOW,
    MAX_TOKEN_LIFE,
    make_app_token,
    make_keyring,
    make_signing_keys,
)
from lychgate.domain import SigningKey
from lychgate.errors import ConfigError, TokenError, UsageError
from lychgate.ids import KeyId
from lychgate.secret import Secret
from lychgate.tokens import (
    CachedVerifier,
    Keyring,
    PublicKeyring,
    Reason,
    generate_signing_key,
    rotate,
    verify_app_token,
)

from .helpers import header_of

LATER = KEY_NOW + timedelta(days=1)


def _private_d(key: SigningKey) -> str:
    d = json.loads(key.private_jwk.reveal())["d"]
    assert isinstance(d, str)
    return d


def test_generated_key_is_p256_with_thumbprint_kid() -> None:
    key = generate_signing_key(KEY_NOW)
    jwk = json.loads(key.private_jwk.reveal())
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert jwk["alg"] == "ES256"
    assert jwk["kid"] == key.kid
    # RFC 7638: the thumbprint covers crv, kty, x and y only.
    public = ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")})
    assert key.kid == public.thumbprint()
    assert key.created_at == KEY_NOW
    assert key.retired_at is None
    assert key.verify_until is None


def test_generated_keys_differ() -> None:
    assert generate_signing_key(KEY_NOW).kid != generate_signing_key(KEY_NOW).kid


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2030, 1, 1)
    with pytest.raises(UsageError):
        generate_signing_key(naive)
    with pytest.raises(UsageError):
        Keyring([], naive)


def test_signer_is_the_newest_active_key() -> None:
    old = generate_signing_key(KEY_NOW - timedelta(days=2))
    new = generate_signing_key(KEY_NOW - timedelta(days=1))
    keyring = Keyring([new, old], KEY_NOW)
    assert keyring.signer == new
    assert {k.kid for k in keyring.verification_keys} == {old.kid, new.kid}


def test_future_key_is_published_but_does_not_sign() -> None:
    current = generate_signing_key(KEY_NOW - timedelta(days=1))
    upcoming = generate_signing_key(KEY_NOW + timedelta(hours=1))
    keyring = Keyring([current, upcoming], KEY_NOW)
    assert keyring.signer == current
    assert {j["kid"] for j in keyring.jwks()["keys"]} == {current.kid, upcoming.kid}


def test_no_active_key_is_a_clear_error() -> None:
    retired = replace(
        generate_signing_key(KEY_NOW - timedelta(days=1)),
        retired_at=KEY_NOW - timedelta(hours=1),
        verify_until=KEY_NOW + timedelta(hours=1),
    )
    keyring = Keyring([retired], KEY_NOW)
    assert [k.kid for k in keyring.verification_keys] == [retired.kid]
    with pytest.raises(ConfigError, match="no active signing key"):
        _ = keyring.signer
    with pytest.raises(ConfigError):
        keyring.sign("x", {})
    with pytest.raises(ConfigError):
        _ = Keyring([], KEY_NOW).signer


def test_verification_keys_respect_verify_until() -> None:
    retired = replace(
        generate_signing_key(KEY_NOW - timedelta(days=1)),
        retired_at=KEY_NOW - timedelta(hours=2),
        verify_until=KEY_NOW,
    )
    forgotten = replace(
        generate_signing_key(KEY_NOW - timedelta(days=1)),
        retired_at=KEY_NOW - timedelta(hours=2),
    )
    active = generate_signing_key(KEY_NOW - timedelta(hours=1))
    before = Keyring([retired, forgotten, active], KEY_NOW - timedelta(seconds=1))
    assert {k.kid for k in before.verification_keys} == {retired.kid, active.kid}
    at = Keyring([retired, forgotten, active], KEY_NOW)  # verify_until must be > now
    assert {k.kid for k in at.verification_keys} == {active.kid}


def test_duplicate_kids_are_refused() -> None:
    key = generate_signing_key(KEY_NOW)
    with pytest.raises(ConfigError):
        Keyring([key, key], KEY_NOW)


def test_jwks_holds_public_keys_only() -> None:
    keys = make_signing_keys(retired=2)
    keyring = Keyring(keys, KEY_NOW)
    jwks = keyring.jwks()
    assert len(jwks["keys"]) == 3
    for member in jwks["keys"]:
        assert set(member) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (member["kty"], member["crv"], member["alg"], member["use"]) == (
            "EC",
            "P-256",
            "ES256",
            "sig",
        )
    text = json.dumps(jwks)
    for key in keys:
        assert _private_d(key) not in text


def test_jwks_is_a_fresh_copy() -> None:
    keyring = make_keyring()
    keyring.jwks()["keys"][0]["kid"] = "changed"
    assert keyring.jwks()["keys"][0]["kid"] == keyring.signer.kid


def test_public_keyring_from_jwks_verifies(keyring: Keyring) -> None:
    public = PublicKeyring.from_jwks(json.loads(json.dumps(keyring.jwks())))
    assert public == keyring.public
    assert hash(public) == hash(keyring.public)
    assert public.kids == {keyring.signer.kid}
    claims = verify_app_token(public, make_app_token(keyring), now=KEY_NOW, issuer=ISSUER)
    assert claims.sid == "sess-1"


def test_public_keyrings_differ_by_keys() -> None:
    assert make_keyring().public != make_keyring().public


@pytest.mark.parametrize(
    "change",
    [
        {"d": "AAAA"},
        {"kty": "RSA"},
        {"crv": "P-384"},
        {"alg": "HS256"},
        {"use": "enc"},
        {"kid": ""},
        {"x": "AAAA"},
        {"y": 5},
    ],
)
def test_from_jwks_is_strict(keyring: Keyring, change: dict[str, object]) -> None:
    member: dict[str, object] = {**keyring.jwks()["keys"][0], **change}
    with pytest.raises(ConfigError):
        PublicKeyring.from_jwks({"keys": [member]})


def test_from_jwks_refuses_bad_shapes(keyring: Keyring) -> None:
    member = keyring.jwks()["keys"][0]
    for bad in ({}, {"keys": member}, {"keys": ["x"]}, {"keys": [member, member]}):
        with pytest.raises(ConfigError):
            PublicKeyring.from_jwks(bad)


def test_from_jwks_refuses_a_point_off_the_curve(keyring: Keyring) -> None:
    member = keyring.jwks()["keys"][0]
    member["y"] = member["x"]  # (x, x) is not on P-256 (invalid-curve attack)
    with pytest.raises(ConfigError):
        PublicKeyring.from_jwks({"keys": [member]})


def test_empty_jwks_verifies_nothing(keyring: Keyring) -> None:
    empty = PublicKeyring.from_jwks({"keys": []})
    with pytest.raises(TokenError) as info:
        verify_app_token(empty, make_app_token(keyring), now=KEY_NOW, issuer=ISSUER)
    assert info.value.reason == Reason.UNKNOWN_KID


@pytest.mark.parametrize(
    "private_jwk",
    [
        "not json",
        "[]",
        json.dumps({"kty": "oct", "k": "c2VjcmV0"}),
    ],
)
def test_bad_private_jwk_is_a_config_error(private_jwk: str) -> None:
    key = SigningKey(kid=KeyId("k1"), private_jwk=Secret(private_jwk), created_at=KEY_NOW)
    with pytest.raises(ConfigError) as info:
        Keyring([key], KEY_NOW)
    assert info.value.field == "signing_keys"


def test_public_only_or_wrong_curve_jwk_is_refused_without_leaking_it() -> None:
    p384 = ECKey.generate_key("P-384", private=True)
    data = p384.as_dict(private=True)
    key = SigningKey(kid=KeyId("k1"), private_jwk=Secret(json.dumps(data)), created_at=KEY_NOW)
    with pytest.raises(ConfigError) as info:
        Keyring([key], KEY_NOW)
    assert str(data["d"]) not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__

    public = generate_signing_key(KEY_NOW)
    public_jwk = {k: v for k, v in json.loads(public.private_jwk.reveal()).items() if k != "d"}
    with pytest.raises(ConfigError):
        Keyring([replace(public, private_jwk=Secret(json.dumps(public_jwk)))], KEY_NOW)


def test_jwk_with_another_kid_is_refused() -> None:
    key = generate_signing_key(KEY_NOW)
    with pytest.raises(ConfigError, match="another kid"):
        Keyring([replace(key, kid=KeyId("other"))], KEY_NOW)


def test_private_material_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    keys = make_signing_keys(retired=1)
    keyring = Keyring(keys, KEY_NOW)
    verifier = CachedVerifier(keyring.public)
    shown = [
        repr(keyring),
        str(keyring),
        repr(keyring.public),
        repr(verifier),
        repr(keys),
        str(keys[0]),
        repr(keyring.verification_keys),
        repr(keyring.signer),
    ]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("lychgate.test").info(
            "keys %r %s %r", keyring, keyring.signer, keys, extra={"k": keyring}
        )
    shown.append(caplog.text)
    for key in keys:
        secret = _private_d(key)
        for text in shown:
            assert secret not in text
            assert key.private_jwk.reveal() not in text
    assert keyring.signer.kid in repr(keyring)


def test_keyrings_are_immutable(keyring: Keyring) -> None:
    with pytest.raises(AttributeError):
        keyring._signer = None
    with pytest.raises(AttributeError):
        keyring.public._keys = {}


def test_rotate_from_nothing_makes_one_signer() -> None:
    keys = rotate([], KEY_NOW, MAX_TOKEN_LIFE)
    assert len(keys) == 1
    assert Keyring(keys, KEY_NOW).signer == keys[0]


def test_rotate_retires_the_signer_and_drops_dead_keys() -> None:
    t0 = KEY_NOW
    t1 = t0 + timedelta(days=1)
    keys0 = rotate([], t0, MAX_TOKEN_LIFE)
    keys1 = rotate(keys0, t1, MAX_TOKEN_LIFE)
    old, new = keys1
    assert old.kid == keys0[0].kid
    assert old.retired_at == t1
    assert old.verify_until == t1 + MAX_TOKEN_LIFE
    assert new.created_at == t1
    assert new.retired_at is None

    # A second rotation within the window keeps the first key; one after it drops it.
    t2 = t1 + MAX_TOKEN_LIFE / 2
    assert [k.kid for k in rotate(keys1, t2, MAX_TOKEN_LIFE)][:2] == [old.kid, new.kid]
    t3 = t1 + MAX_TOKEN_LIFE
    assert old.kid not in {k.kid for k in rotate(keys1, t3, MAX_TOKEN_LIFE)}


def test_rotate_needs_a_positive_life() -> None:
    with pytest.raises(UsageError):
        rotate([], KEY_NOW, timedelta(0))


def test_tokens_survive_rotation_until_verify_until() -> None:
    t0 = KEY_NOW
    keys0 = rotate([], t0, MAX_TOKEN_LIFE)
    before = Keyring(keys0, t0)
    old_token = make_app_token(before, now=t0, ttl=timedelta(days=2))

    t1 = t0 + timedelta(hours=1)
    keys1 = rotate(keys0, t1, MAX_TOKEN_LIFE)
    after = Keyring(keys1, t1)
    assert after.signer.kid != before.signer.kid
    new_token = make_app_token(after, now=t1)
    assert header_of(new_token)["kid"] == after.signer.kid
    assert header_of(old_token)["kid"] == before.signer.kid

    # The old token verifies with the new keyring, through the gateway's public half too.
    gateway = PublicKeyring.from_jwks(after.jwks())
    for verifier in (after, gateway):
        assert verify_app_token(verifier, old_token, now=t1, issuer=ISSUER).sid == "sess-1"
        assert verify_app_token(verifier, new_token, now=t1, issuer=ISSUER).sid == "sess-1"

    # Just before verify_until it still verifies; at verify_until the key is gone.
    edge = t1 + MAX_TOKEN_LIFE
    almost = Keyring(keys1, edge - timedelta(seconds=1))
    assert verify_app_token(almost, old_token, now=edge - timedelta(seconds=1), issuer=ISSUER)
    gone = Keyring(keys1, edge)
    with pytest.raises(TokenError) as info:
        verify_app_token(gone, old_token, now=edge, issuer=ISSUER)
    assert info.value.reason == Reason.UNKNOWN_KID


def test_now_in_another_timezone_is_the_same_instant() -> None:
    keys = make_signing_keys()
    elsewhere = KEY_NOW.astimezone(timezone(timedelta(hours=-7)))
    assert Keyring(keys, elsewhere).signer == Keyring(keys, KEY_NOW).signer
