"""Key rotation as `lychgate keys rotate` does it: published before it signs, retired keys kept
as long as any token they signed can live, and a rotation for keys that leaked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from fixtures.store import T0
from lychgate.config import Settings
from lychgate.config.settings import MAX_TTL
from lychgate.deployment.keys import (
    PUBLISH_AHEAD,
    ensure_signing_key,
    max_token_life,
    rotate_signing_key,
)
from lychgate.errors import TokenError
from lychgate.store import Store
from lychgate.tokens import CLOCK_SKEW, Keyring


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, session_ttl=12 * 3600, app_token_ttl=3600)


async def keyring(store: Store, at: timedelta) -> Keyring:
    return Keyring(await store.signing_keys.list(), T0 + at)


async def test_a_new_key_is_published_before_it_signs(store: Store, settings: Settings) -> None:
    old = await ensure_signing_key(store.signing_keys, T0)
    rotation = await rotate_signing_key(store.signing_keys, T0, settings)
    assert rotation.retired == (old,)
    assert rotation.signs_from == T0 + PUBLISH_AHEAD
    # Until then the old key signs, and every verifier that follows the feed already has the
    # new one: the first token the new key signs is refused nowhere.
    before = await keyring(store, PUBLISH_AHEAD - timedelta(seconds=1))
    assert before.signer.kid == old
    assert {k.kid for k in before.verification_keys} == {old, rotation.new_kid}
    after = await keyring(store, PUBLISH_AHEAD)
    assert after.signer.kid == rotation.new_kid
    assert before.verify(after.sign("app+jwt", {"sub": "u"}), "app+jwt").kid == (rotation.new_kid)


async def test_a_retired_key_verifies_as_long_as_a_minted_token_can_live(
    store: Store, settings: Settings
) -> None:
    # `lychgate token mint --ttl` signs up to session_ttl, longer than app_token_ttl.
    assert max_token_life(settings) == timedelta(seconds=settings.session_ttl) + CLOCK_SKEW
    old = await ensure_signing_key(store.signing_keys, T0)
    token = (await keyring(store, timedelta())).sign("app+jwt", {"sub": "u"})
    rotation = await rotate_signing_key(store.signing_keys, T0, settings)
    assert rotation.verify_until == T0 + PUBLISH_AHEAD + max_token_life(settings)
    late = await keyring(store, timedelta(seconds=settings.session_ttl))
    assert late.verify(token, "app+jwt").kid == old
    gone = await keyring(store, rotation.verify_until - T0)
    with pytest.raises(TokenError):
        gone.verify(token, "app+jwt")


async def test_two_rotations_in_a_row_always_leave_one_signer(
    store: Store, settings: Settings
) -> None:
    await ensure_signing_key(store.signing_keys, T0)
    first = await rotate_signing_key(store.signing_keys, T0, settings)
    second = await rotate_signing_key(store.signing_keys, T0 + timedelta(seconds=3), settings)
    for seconds in range(30):
        ring = await keyring(store, timedelta(seconds=seconds))
        expected = 0 if seconds < 10 else 1 if seconds < 13 else 2
        signer = ring.signer.kid
        assert [first.retired[0], first.new_kid, second.new_kid].index(signer) == expected


async def test_a_compromised_rotation_drops_every_old_key_at_once(
    store: Store, settings: Settings
) -> None:
    await ensure_signing_key(store.signing_keys, T0)
    await rotate_signing_key(store.signing_keys, T0, settings)  # one retired, one pending
    leaked = (await keyring(store, timedelta())).sign("app+jwt", {"sub": "u"})
    rotation = await rotate_signing_key(
        store.signing_keys, T0 + timedelta(seconds=1), settings, compromised=True
    )
    assert len(rotation.retired) == 2
    assert rotation.signs_from == T0 + timedelta(seconds=1)
    ring = await keyring(store, timedelta(seconds=1))
    assert ring.signer.kid == rotation.new_kid
    # A replica whose clock runs behind (within the skew allowed) still has a key that signs.
    behind = await keyring(store, timedelta(seconds=1) - CLOCK_SKEW)
    assert behind.signer.kid == rotation.new_kid
    assert [k.kid for k in ring.verification_keys] == [rotation.new_kid]
    with pytest.raises(TokenError):
        ring.verify(leaked, "app+jwt")


async def test_a_rotation_at_the_longest_session_ttl_has_a_date(
    store: Store, tmp_path: Path
) -> None:
    # A session_ttl of 10**13 s was accepted, and `keys rotate` crashed adding it to now;
    # settings now stop at 400 days (MAX_TTL), which any date this century can take.
    longest = Settings(data_dir=tmp_path, session_ttl=MAX_TTL, app_token_ttl=MAX_TTL)
    await ensure_signing_key(store.signing_keys, T0)
    rotation = await rotate_signing_key(store.signing_keys, T0, longest)
    assert rotation.verify_until == T0 + PUBLISH_AHEAD + timedelta(days=400) + CLOCK_SKEW
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, session_ttl=10**13)
