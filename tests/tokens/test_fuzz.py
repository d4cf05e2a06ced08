"""Property tests: nothing but a token we made verifies, and failures are only TokenError."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.keys import ISSUER, KEY_NOW, make_app_token, make_keyring
from lychgate.errors import TokenError
from lychgate.ids import AppSlug
from lychgate.tokens import (
    APP_TOKEN_TYP,
    Keyring,
    Reason,
    seal,
    unseal,
    verify_app_token,
    verify_assertion,
)

from .helpers import b64e

SEAL_KEY = secrets.token_bytes(32)  # constant for the module: @given needs no fixture for it
REASONS = frozenset(Reason)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_B64 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_HEADER = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jwk", "enc", "zip", "cty", "x"]),
    st.sampled_from(["ES256", "none", "HS256", "dir", "A256GCM", APP_TOKEN_TYP, "DEF"]) | _JSON,
)


@pytest.fixture(scope="module")
def fuzz_keyring() -> Keyring:
    """Module-scoped: @given re-runs the test body, and function-scoped fixtures would not reset."""
    return make_keyring()


def _all_refuse(keyring: Keyring, token: str) -> None:
    """Every verifier refuses ``token`` with a TokenError (any other exception fails the test)."""
    with pytest.raises(TokenError) as app:
        verify_app_token(keyring, token, now=KEY_NOW, issuer=ISSUER)
    with pytest.raises(TokenError) as assertion:
        verify_assertion(keyring, token, now=KEY_NOW, issuer=ISSUER, audience=AppSlug("wiki"))
    with pytest.raises(TokenError) as sealed:
        unseal(token, SEAL_KEY, now=KEY_NOW)
    for info in (app, assertion, sealed):
        assert info.value.reason in REASONS  # the closed set, nothing else


@SETTINGS
@given(text=st.text(max_size=2000))
def test_arbitrary_text_never_verifies(fuzz_keyring: Keyring, text: str) -> None:
    _all_refuse(fuzz_keyring, text)


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_verify(fuzz_keyring: Keyring, data: bytes) -> None:
    _all_refuse(fuzz_keyring, data.decode("latin-1"))  # how the gateway reads a cookie
    with pytest.raises(TokenError):
        verify_app_token(fuzz_keyring, data, now=KEY_NOW, issuer=ISSUER)  # type: ignore[arg-type]


@SETTINGS
@given(parts=st.lists(_B64, min_size=1, max_size=6))
def test_token_shaped_noise_never_verifies(fuzz_keyring: Keyring, parts: list[str]) -> None:
    _all_refuse(fuzz_keyring, ".".join(parts))


@SETTINGS
@given(header=_HEADER, payload=_JSON, tail=st.lists(st.binary(max_size=80), min_size=1, max_size=4))
def test_structured_tokens_never_verify(
    fuzz_keyring: Keyring, header: dict[str, object], payload: object, tail: list[bytes]
) -> None:
    head = b64e(json.dumps(header).encode())
    body = b64e(json.dumps(payload).encode())
    _all_refuse(fuzz_keyring, ".".join([head, body, *(b64e(t) for t in tail)]))


@SETTINGS
@given(data=st.data())
def test_any_edit_of_a_good_app_token_is_refused(
    fuzz_keyring: Keyring, data: st.DataObject
) -> None:
    token = make_app_token(fuzz_keyring)
    edited = _edit(data, token)
    if edited != token:
        with pytest.raises(TokenError):
            verify_app_token(fuzz_keyring, edited, now=KEY_NOW, issuer=ISSUER)


@SETTINGS
@given(data=st.data())
def test_any_edit_of_a_sealed_token_is_refused(data: st.DataObject) -> None:
    token = seal({"a": "b"}, SEAL_KEY, now=KEY_NOW, ttl=timedelta(minutes=10))
    edited = _edit(data, token)
    if edited != token:
        with pytest.raises(TokenError):
            unseal(edited, SEAL_KEY, now=KEY_NOW)


def _edit(data: st.DataObject, token: str) -> str:
    at = data.draw(st.integers(0, len(token) - 1))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(st.characters(codec="latin-1"))
    if kind == "replace":
        return token[:at] + char + token[at + 1 :]
    if kind == "insert":
        return token[:at] + char + token[at:]
    return token[:at] + token[at + 1 :]
