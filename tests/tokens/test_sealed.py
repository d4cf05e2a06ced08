"""The sealed registration handoff (JWE dir + A256GCM)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import timedelta

import pytest
from joserfc import jwe
from joserfc.jwk import OctKey

from fixtures.keys import KEY_NOW
from lychgate.errors import TokenError, UsageError
from lychgate.secret import Secret
from lychgate.tokens import REGISTRATION_TTL, Reason, new_seal_key, seal, unseal
from lychgate.tokens.sealed import SEALED_TYP

from .helpers import b64d, b64e, expect, flip_byte, header_of

PAYLOAD = {"external_id": "cust-42", "name": "Ada", "email": None, "token": "proxy-token"}


def _sealed(key: bytes) -> str:
    return seal(PAYLOAD, key, now=KEY_NOW, ttl=REGISTRATION_TTL)


def _refused(token: str, key: bytes, **kwargs: object) -> pytest.ExceptionInfo[TokenError]:
    with pytest.raises(TokenError) as info:
        unseal(token, key, now=kwargs.get("now", KEY_NOW))  # type: ignore[arg-type]
    return info


def test_round_trip(seal_key: bytes) -> None:
    token = _sealed(seal_key)
    assert header_of(token) == {"alg": "dir", "enc": "A256GCM", "typ": SEALED_TYP}
    assert token.split(".")[1] == ""  # dir: no encrypted key
    assert "cust-42" not in token
    assert "Ada" not in token
    assert unseal(token, seal_key, now=KEY_NOW) == PAYLOAD


def test_secret_key_from_config() -> None:
    key = new_seal_key()
    assert "Secret('**" in repr(key)
    token = seal({"a": "b"}, key, now=KEY_NOW, ttl=REGISTRATION_TTL)
    assert unseal(token, key, now=KEY_NOW) == {"a": "b"}
    assert unseal(token, b64d(key.reveal()), now=KEY_NOW) == {"a": "b"}


@pytest.mark.parametrize(
    "key",
    [b"", b"short", secrets.token_bytes(16), secrets.token_bytes(33), Secret("not base64!")],
)
def test_bad_keys_are_a_bug(seal_key: bytes, key: bytes | Secret) -> None:
    with pytest.raises(UsageError):
        seal(PAYLOAD, key, now=KEY_NOW, ttl=REGISTRATION_TTL)
    with pytest.raises(UsageError):
        unseal(_sealed(seal_key), key, now=KEY_NOW)


def test_bad_payloads_and_ttls_are_a_bug(seal_key: bytes) -> None:
    with pytest.raises(UsageError):
        seal({"n": 1}, seal_key, now=KEY_NOW, ttl=REGISTRATION_TTL)  # type: ignore[dict-item]
    with pytest.raises(UsageError):
        seal(PAYLOAD, seal_key, now=KEY_NOW, ttl=timedelta(0))


def test_expiry_edges(seal_key: bytes) -> None:
    token = _sealed(seal_key)
    exp = KEY_NOW + REGISTRATION_TTL
    assert unseal(token, seal_key, now=exp - timedelta(seconds=1)) == PAYLOAD
    expect(Reason.EXPIRED, _refused(token, seal_key, now=exp))
    expect(Reason.EXPIRED, _refused(token, seal_key, now=exp + timedelta(seconds=1)))


def test_other_key_cannot_open_it(seal_key: bytes) -> None:
    expect(Reason.TAMPERED, _refused(_sealed(seal_key), secrets.token_bytes(32)))


@pytest.mark.parametrize(("part", "name"), [(2, "iv"), (3, "ciphertext"), (4, "tag")])
def test_flipped_bytes_are_tampering(seal_key: bytes, part: int, name: str) -> None:
    token = _sealed(seal_key)
    size = len(b64d(token.split(".")[part]))
    for index in (0, size // 2, size - 1):
        expect(Reason.TAMPERED, _refused(flip_byte(token, part, index), seal_key))


def test_changed_header_is_tampering(seal_key: bytes) -> None:
    """The protected header is GCM's additional data: same meaning, other bytes, still fails."""
    token = _sealed(seal_key)
    header = b64e(json.dumps(header_of(token), indent=2).encode())
    expect(Reason.TAMPERED, _refused(".".join([header, *token.split(".")[1:]]), seal_key))
    # A flipped bit in the header's bytes breaks its JSON or one of its values.
    for index in range(len(b64d(token.split(".")[0]))):
        with pytest.raises(TokenError):
            unseal(flip_byte(token, 0, index), seal_key, now=KEY_NOW)


def test_encrypted_key_part_must_be_empty(seal_key: bytes) -> None:
    parts = _sealed(seal_key).split(".")
    parts[1] = b64e(seal_key)
    expect(Reason.TAMPERED, _refused(".".join(parts), seal_key))


def test_truncated_iv_or_tag_is_tampering(seal_key: bytes) -> None:
    for part in (2, 4):
        parts = _sealed(seal_key).split(".")
        parts[part] = b64e(b64d(parts[part])[:-1])
        expect(Reason.TAMPERED, _refused(".".join(parts), seal_key))


def _with_header(token: str, header: Mapping[str, object]) -> str:
    return ".".join([b64e(json.dumps(header).encode()), *token.split(".")[1:]])


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "dir", "enc": "A128GCM", "typ": SEALED_TYP},
        {"alg": "dir", "enc": "A256CBC-HS512", "typ": SEALED_TYP},
        {"alg": "A256KW", "enc": "A256GCM", "typ": SEALED_TYP},
        {"alg": "RSA-OAEP", "enc": "A256GCM", "typ": SEALED_TYP},
        {"alg": "none", "enc": "A256GCM", "typ": SEALED_TYP},
        {"enc": "A256GCM", "typ": SEALED_TYP},
        {"alg": "dir", "typ": SEALED_TYP},
    ],
)
def test_other_algorithms_are_refused(seal_key: bytes, header: dict[str, object]) -> None:
    expect(
        Reason.ALGORITHM_NOT_ALLOWED, _refused(_with_header(_sealed(seal_key), header), seal_key)
    )


def test_zip_and_unknown_headers_are_refused(seal_key: bytes) -> None:
    for extra in ({"zip": "DEF"}, {"crit": ["exp"]}, {"kid": "x"}):
        header = {"alg": "dir", "enc": "A256GCM", "typ": SEALED_TYP, **extra}
        expect(Reason.MALFORMED, _refused(_with_header(_sealed(seal_key), header), seal_key))


def test_wrong_typ_is_refused(seal_key: bytes) -> None:
    header = {"alg": "dir", "enc": "A256GCM", "typ": "JWT"}
    expect(Reason.WRONG_TYPE, _refused(_with_header(_sealed(seal_key), header), seal_key))


def test_correctly_encrypted_but_not_ours(seal_key: bytes) -> None:
    """Authenticated with our key (an insider bug), but the plaintext is not our format."""
    key = OctKey.import_key(seal_key)
    header = {"alg": "dir", "enc": "A256GCM", "typ": SEALED_TYP}
    registry = jwe.JWERegistry(algorithms=["dir", "A256GCM"])
    cases = {
        b"[]": Reason.MALFORMED,
        b'{"exp": 1}': Reason.MISSING_CLAIM,
        json.dumps({"iat": 1, "exp": 2**33, "data": [1]}).encode(): Reason.INVALID_CLAIM,
        json.dumps({"iat": 1, "exp": 2**33, "data": {"a": 1}}).encode(): Reason.INVALID_CLAIM,
    }
    for plaintext, reason in cases.items():
        token = jwe.encrypt_compact(header, plaintext, key, registry=registry)
        expect(reason, _refused(token, seal_key))


@pytest.mark.parametrize(
    "token", ["", "a.b.c", "a..c.d.e.f", "....", "x" * 20_000, "e30..AAAA.AAAA.AAAA\n"]
)
def test_garbage_is_refused(seal_key: bytes, token: str) -> None:
    info = _refused(token, seal_key)
    assert info.value.reason in {Reason.MALFORMED, Reason.TOO_LARGE, Reason.ALGORITHM_NOT_ALLOWED}


def test_app_token_is_not_a_sealed_token(seal_key: bytes) -> None:
    with pytest.raises(TokenError):
        unseal("eyJhbGciOiJFUzI1NiJ9.e30.AAAA", seal_key, now=KEY_NOW)
