"""Signing keys of a deployment: make sure one exists, rotate, and load the keyring."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from lychgate.config import Settings
from lychgate.ids import KeyId
from lychgate.store.ports import SigningKeyRepository
from lychgate.tokens import CLOCK_SKEW, Keyring, generate_signing_key

#: A new key is published this long before it signs: every gateway and authz replica that
#: follows the config feed (which looks twice a second) knows it before the first token it
#: signs reaches them, so a rotation refuses no sign-in and no token (``unknown_kid``).
PUBLISH_AHEAD: Final = timedelta(seconds=10)


def max_token_life(settings: Settings) -> timedelta:
    """How long a token signed now may still be presented: a retired key verifies this long.

    App tokens live ``app_token_ttl``, but ``lychgate token mint --ttl`` signs them for up to
    ``session_ttl`` (identity assertions live 60 s); the clock skew allowance covers gateways
    whose clocks run slightly behind.
    """
    longest = max(settings.app_token_ttl, settings.session_ttl, 60)
    return timedelta(seconds=longest) + CLOCK_SKEW


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
    signs_from: datetime
    retired: tuple[KeyId, ...]
    verify_until: datetime
    pruned: int


async def rotate_signing_key(
    keys: SigningKeyRepository, now: datetime, settings: Settings, *, compromised: bool = False
) -> Rotation:
    """Switch signing to a new key, published :data:`PUBLISH_AHEAD` before it signs; the old
    keys sign until then and verify until every token they signed has expired.

    ``compromised``: the old keys must not be trusted a moment longer. The new key signs at
    once and every other key is deleted, so every token they signed is refused, and what they
    opened (WebSockets, event streams) is closed: browsers get new app tokens from their
    portal session, and tokens from ``lychgate token mint`` must be minted again. A gateway
    refuses the new key's tokens until its feed brings the key (within a second).
    """
    if compromised:
        # Dated back by the skew allowed: an authz replica whose clock runs behind this one's
        # must still find a key that signs (every other key is gone).
        new_key = generate_signing_key(now - CLOCK_SKEW)
        dropped = await keys.replace_all(new_key)
        return Rotation(new_key.kid, now, tuple(dropped), now, len(dropped))
    starts = now + PUBLISH_AHEAD
    verify_until = starts + max_token_life(settings)
    new_key = generate_signing_key(starts)
    retired = await keys.rotate(new_key, retired_at=starts, verify_until=verify_until)
    pruned = await keys.prune(now)
    return Rotation(new_key.kid, starts, tuple(retired), verify_until, pruned)


async def load_keyring(keys: SigningKeyRepository, now: datetime) -> Keyring:
    return Keyring(await keys.list(), now)
