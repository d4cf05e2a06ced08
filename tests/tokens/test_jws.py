"""JWS verification against hostile tokens (SECURITY.md items 5 and 6).

Every token here is refused before its claims are looked at, so the claims are always valid: a
token that got through would be accepted, and the test would fail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from fixtures.keys import ISSUER, KEY_NOW, app_claims, forge_jws, make_keyring, signer_private_key
from lychgate.errors import TokenError
from lychgate.tokens import APP_TOKEN_TYP, Keyring, Reason, encode_app_token, verify_app_token
from lychgate.tokens.compact import MAX_TOKEN_CHARS, is_canonical

from .helpers import b64d, b64e, claims_of, expect, flip_byte, header_of


def _claims() -> dict[str, object]:
    good = app_claims()
    return {
        "iss": ISSUER,
        "sub": good.sub,
        "sid": good.sid,
        "app": good.app,
        "adm": True,
        "iat": int(good.iat.timestamp()),
        "exp": int(good.exp.timestamp()),
    }


def _verify(keyring: Keyring, token: str) -> None:
    verify_app_token(keyring, token, now=KEY_NOW, issuer=ISSUER)


def _refused(keyring: Keyring, token: str) -> pytest.ExceptionInfo[TokenError]:
    with pytest.raises(TokenError) as info:
        _verify(keyring, token)
    return info


def _unsigned(header: Mapping[str, object], signature: bytes = b"") -> str:
    payload = json.dumps(_claims()).encode()
    return f"{b64e(json.dumps(header).encode())}.{b64e(payload)}.{b64e(signature)}"


def _hmac_token(header: Mapping[str, object], secret: bytes) -> str:
    signing_input = f"{b64e(json.dumps(header).encode())}.{b64e(json.dumps(_claims()).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64e(mac)}"


def test_forged_helper_makes_acceptable_tokens(keyring: Keyring) -> None:
    """The control: a forged token with our header and a good signature is accepted."""
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    _verify(keyring, forge_jws(signer_private_key(keyring), header, _claims()))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_is_refused(keyring: Keyring, alg: str) -> None:
    header = {"alg": alg, "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    # With an empty signature part the token is not even JWS-shaped ...
    expect(Reason.MALFORMED, _refused(keyring, _unsigned(header)))
    # ... and with any signature bytes the algorithm itself is refused.
    expect(Reason.ALGORITHM_NOT_ALLOWED, _refused(keyring, _unsigned(header, b"\x00" * 64)))


def test_missing_alg_is_refused(keyring: Keyring) -> None:
    header = {"kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    expect(Reason.ALGORITHM_NOT_ALLOWED, _refused(keyring, _unsigned(header, b"\x00" * 64)))


def test_hs256_keyed_with_our_public_key_is_refused(keyring: Keyring) -> None:
    """Algorithm confusion: an HMAC keyed with public key bytes an attacker can fetch."""
    jwk = keyring.jwks()["keys"][0]
    public = keyring.public  # via the JWKS: every spelling an attacker could try
    pem = (
        signer_private_key(keyring)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    secrets = [pem, json.dumps(jwk).encode(), b64d(jwk["x"]) + b64d(jwk["y"])]
    assert public.kids == {jwk["kid"]}
    for alg in ("HS256", "HS384", "HS512"):
        for secret in secrets:
            header = {"alg": alg, "kid": jwk["kid"], "typ": APP_TOKEN_TYP}
            expect(Reason.ALGORITHM_NOT_ALLOWED, _refused(keyring, _hmac_token(header, secret)))


def test_rs256_token_is_refused(keyring: Keyring) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = {"alg": "RS256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    signing_input = f"{b64e(json.dumps(header).encode())}.{b64e(json.dumps(_claims()).encode())}"
    signature = rsa_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64e(signature)}"
    expect(Reason.ALGORITHM_NOT_ALLOWED, _refused(keyring, token))


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_eddsa_token_is_refused(keyring: Keyring, alg: str) -> None:
    ed_key = ed25519.Ed25519PrivateKey.generate()
    header = {"alg": alg, "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    signing_input = f"{b64e(json.dumps(header).encode())}.{b64e(json.dumps(_claims()).encode())}"
    token = f"{signing_input}.{b64e(ed_key.sign(signing_input.encode()))}"
    expect(Reason.ALGORITHM_NOT_ALLOWED, _refused(keyring, token))


def test_es384_is_refused(keyring: Keyring) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    header = {"alg": "ES384", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    signing_input = f"{b64e(json.dumps(header).encode())}.{b64e(json.dumps(_claims()).encode())}"
    token = f"{signing_input}.{b64e(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384())))}"
    expect(Reason.ALGORITHM_NOT_ALLOWED, _refused(keyring, token))


def test_missing_kid_is_refused(keyring: Keyring) -> None:
    private = signer_private_key(keyring)
    for header in (
        {"alg": "ES256", "typ": APP_TOKEN_TYP},
        {"alg": "ES256", "typ": APP_TOKEN_TYP, "kid": ""},
        {"alg": "ES256", "typ": APP_TOKEN_TYP, "kid": 7},
    ):
        expect(Reason.UNKNOWN_KID, _refused(keyring, forge_jws(private, header, _claims())))


def test_unknown_kid_is_refused(keyring: Keyring) -> None:
    header = {"alg": "ES256", "kid": "somebody-else", "typ": APP_TOKEN_TYP}
    token = forge_jws(signer_private_key(keyring), header, _claims())
    expect(Reason.UNKNOWN_KID, _refused(keyring, token))


def test_token_signed_by_an_unknown_key_is_refused(keyring: Keyring) -> None:
    stranger = make_keyring()
    expect(Reason.UNKNOWN_KID, _refused(keyring, encode_app_token(stranger, app_claims())))
    # The same attacker claiming our kid fails on the signature.
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    token = forge_jws(signer_private_key(stranger), header, _claims())
    expect(Reason.BAD_SIGNATURE, _refused(keyring, token))


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},
        {"b64": False},
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"cty": "JWT"},
        {"zip": "DEF"},
    ],
)
def test_unexpected_header_parameters_are_refused(
    keyring: Keyring, extra: dict[str, object]
) -> None:
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP, **extra}
    token = forge_jws(signer_private_key(keyring), header, _claims())
    expect(Reason.MALFORMED, _refused(keyring, token))


def test_embedded_jwk_cannot_choose_the_key(keyring: Keyring) -> None:
    attacker = make_keyring()
    header = {
        "alg": "ES256",
        "kid": attacker.signer.kid,
        "typ": APP_TOKEN_TYP,
        "jwk": attacker.jwks()["keys"][0],
    }
    token = forge_jws(signer_private_key(attacker), header, _claims())
    expect(Reason.MALFORMED, _refused(keyring, token))


def test_duplicate_header_members_are_refused(keyring: Keyring) -> None:
    good = encode_app_token(keyring, app_claims())
    kid = keyring.signer.kid
    raw = f'{{"alg":"ES256","kid":"{kid}","typ":"{APP_TOKEN_TYP}","alg":"ES256"}}'
    token = ".".join([b64e(raw.encode()), *good.split(".")[1:]])
    expect(Reason.MALFORMED, _refused(keyring, token))


def test_duplicate_claims_are_refused(keyring: Keyring) -> None:
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    body = json.dumps(_claims())[:-1] + ', "app": "admin"}'
    token = forge_jws(signer_private_key(keyring), header, body.encode())
    expect(Reason.MALFORMED, _refused(keyring, token))


def test_payload_that_is_not_an_object_is_refused(keyring: Keyring) -> None:
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP}
    private = signer_private_key(keyring)
    for body in (b"[]", b"null", b'"x"', b"\xff\xfe", b'{"exp": NaN}', b"{"):
        expect(Reason.MALFORMED, _refused(keyring, forge_jws(private, header, body)))


def test_tampered_header_payload_or_signature_fails(keyring: Keyring) -> None:
    token = encode_app_token(keyring, app_claims())
    expect(Reason.BAD_SIGNATURE, _refused(keyring, flip_byte(token, 1)))
    expect(Reason.BAD_SIGNATURE, _refused(keyring, flip_byte(token, 2)))
    expect(Reason.BAD_SIGNATURE, _refused(keyring, flip_byte(token, 2, index=63)))
    # Re-serializing the header (same meaning, other bytes) breaks the signature too.
    header = b64e(json.dumps(header_of(token), indent=1).encode())
    expect(Reason.BAD_SIGNATURE, _refused(keyring, ".".join([header, *token.split(".")[1:]])))
    # So does raising the privilege claim.
    payload = b64e(json.dumps({**claims_of(token), "adm": True}).encode())
    parts = token.split(".")
    expect(Reason.BAD_SIGNATURE, _refused(keyring, f"{parts[0]}.{payload}.{parts[2]}"))


def test_signature_malleability_by_spelling_is_refused(keyring: Keyring) -> None:
    """Python's base64 skips junk and ignores padding bits; we accept one spelling only."""
    token = encode_app_token(keyring, app_claims())
    head, body, signature = token.split(".")
    for other in (signature + "=", signature + "==", signature[:-1] + "!" + signature[-1]):
        with pytest.raises(TokenError):
            _verify(keyring, f"{head}.{body}.{other}")
    # Same bytes, other spelling: the last character's unused low bits set.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) | 0x03]
    respelled = signature[:-1] + last
    if respelled != signature:
        assert b64d(respelled) == b64d(signature)
        expect(Reason.MALFORMED, _refused(keyring, f"{head}.{body}.{respelled}"))


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "a..c",
        "not a token",
        "e30.e30.e30",
        "e30.e30.",
        "eyJhbGciOiJFUzI1NiJ9.e30.!!!",
        "eyJ+bGci.e30.AAAA",
        "eyJhbGciOiJFUzI1NiJ9.e30.AAAA\n",
        " eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
        "ZXlK.e30.AAAA",
        "éé.e30.AAAA",
    ],
)
def test_garbage_cookies_are_refused(keyring: Keyring, token: str) -> None:
    info = _refused(keyring, token)
    assert info.value.reason in {Reason.MALFORMED, Reason.ALGORITHM_NOT_ALLOWED}


def test_truncated_tokens_are_refused(keyring: Keyring) -> None:
    token = encode_app_token(keyring, app_claims())
    for cut in range(1, len(token)):
        with pytest.raises(TokenError):
            _verify(keyring, token[:cut])
    with pytest.raises(TokenError):
        _verify(keyring, token[1:])


def test_non_base64_characters_are_refused(keyring: Keyring) -> None:
    token = encode_app_token(keyring, app_claims())
    for bad in "+/=%!* \t\x00é":
        for at in (0, len(token) // 2, len(token) - 1):
            if token[at] == ".":
                continue
            with pytest.raises(TokenError) as info:
                _verify(keyring, token[:at] + bad + token[at + 1 :])
            expect(Reason.MALFORMED, info)


def test_huge_tokens_are_refused_before_parsing(keyring: Keyring) -> None:
    token = encode_app_token(keyring, app_claims())
    head, body, signature = token.split(".")
    huge = f"{head}.{body}{'A' * 100_000}.{signature}"
    expect(Reason.TOO_LARGE, _refused(keyring, huge))
    expect(Reason.TOO_LARGE, _refused(keyring, "x" * (MAX_TOKEN_CHARS + 1)))
    expect(Reason.TOO_LARGE, _refused(keyring, "." * 100_000))


def test_oversized_header_is_refused(keyring: Keyring) -> None:
    header = {"alg": "ES256", "kid": keyring.signer.kid, "typ": APP_TOKEN_TYP, "p": "x" * 2000}
    token = forge_jws(signer_private_key(keyring), header, _claims())
    expect(Reason.MALFORMED, _refused(keyring, token))


def test_deeply_nested_header_is_refused(keyring: Keyring) -> None:
    header = b64e(b"[" * 700 + b"]" * 700)
    expect(Reason.MALFORMED, _refused(keyring, f"{header}.e30.{'A' * 86}"))


def test_non_string_tokens_are_refused(keyring: Keyring) -> None:
    token = encode_app_token(keyring, app_claims())
    for value in (token.encode(), None, 42, [token]):
        with pytest.raises(TokenError) as info:
            verify_app_token(keyring, value, now=KEY_NOW, issuer=ISSUER)  # type: ignore[arg-type]
        expect(Reason.MALFORMED, info)


@pytest.mark.parametrize(
    ("segment", "canonical"),
    [
        ("", True),
        ("A", False),
        ("AA", True),
        ("AB", False),
        ("AQ", True),
        ("AAB", False),
        ("AAE", True),
    ],
)
def test_is_canonical(segment: str, canonical: bool) -> None:
    assert is_canonical(segment) is canonical
    assert is_canonical("AAAA" + segment) is canonical
