"""Signing keys of a deployment: make sure one exists, rotate, and load the keyring."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lychgate.config import Settings
from lychgate.ids import KeyId
from lychgate.store.ports import SigningKeyRepository
from lychgate.tokens import CLOCK_SKEW, Keyring, generate_signing_key


def max_token_life(settings: Settings) -> timedelta:
    """How long a token signed now may still be presented: a retired key verifies this long.

    App tokens are the longest-lived signed tokens (identity assertions live 60 s); the clock
    skew allowance covers gateways whose clocks run slightly behind.
    """
    return timedelta(seconds=max(settings.app_token_ttl, 60)) + CLOCK_SKEW


async def ensure_signing_key(keys: SigningKeyRepository, now: datetime) -> KeyId | None:
    """Create the first signing key if there is no active one. Returns its kid if created."""
    stored = await keys.list()
    if any(k.retired_at is None for k in stored):
        return None
    key = generate_signing_key(now)
    await keys.add(key)
    return key.kid


@dataclass(frozen=True, slots=True)
class Rotation:
    new_kid: KeyId
    retired: tuple[KeyId, ...]
    verify_until: datetime
    pruned: int


async def rotate_signing_key(
    keys: SigningKeyRepository, now: datetime, settings: Settings
) -> Rotation:
    """Switch signing to a new key; old keys keep verifying until their tokens have expired."""
    new_key = generate_signing_key(now)
    verify_until = now + max_token_life(settings)
    retired = await keys.rotate(new_key, retired_at=now, verify_until=verify_until)
    pruned = await keys.prune(now)
    return Rotation(new_key.kid, tuple(retired), verify_until, pruned)


async def load_keyring(keys: SigningKeyRepository, now: datetime) -> Keyring:
    return Keyring(await keys.list(), now)
