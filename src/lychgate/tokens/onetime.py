"""One-time codes and links: handoff codes, enrollment and admin setup links.

Theory of operation. A code is 256 random bits from :mod:`secrets`, URL-safe, shown once and
never stored. The store keeps only its SHA-256. A fast hash is enough here, unlike for
passwords: a full-entropy code leaves nothing to guess, so the hash only has to be one-way.

Redeeming takes two steps. The store looks the record up by ``code_hash(presented)``, then
:func:`check_redeemable` decides, purely, whether this code may be redeemed now. Last, the store
marks the record used with a compare-and-set (``UPDATE ... WHERE used_at IS NULL``). Two racing
redeemers can both pass the check, but only one wins the update; the loser must treat a lost
update as :attr:`~lychgate.tokens.errors.Reason.REPLAYED`.

The hash comparison uses :func:`hmac.compare_digest`, so timing tells nothing about how much of
a guess matched (SECURITY.md item 6).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from lychgate.domain import OneTimeCode
from lychgate.errors import UsageError
from lychgate.tokens.clock import require_aware
from lychgate.tokens.errors import Reason, fail

CODE_BYTES: Final = 32  # 256 bits
#: Longest presented code we hash. Ours are 43 characters.
MAX_CODE_CHARS: Final = 256

HANDOFF_TTL: Final = timedelta(seconds=60)
ENROLLMENT_TTL: Final = timedelta(hours=24)


class Purpose(enum.StrEnum):
    """What a one-time code is for. A code made for one purpose never redeems for another."""

    HANDOFF = "handoff"  # /.lychgate/callback?code=, redeemed by the gateway
    ENROLL = "enroll"  # enrollment link that binds a new device to a user
    ADMIN_SETUP = "admin-setup"  # the first admin's enrollment link
    REGISTRATION = "registration"  # the proxying token inside a registration handoff


def new_code() -> str:
    """A fresh code: 256 bits from :mod:`secrets`, base64url (43 characters)."""
    return secrets.token_urlsafe(CODE_BYTES)


def code_hash(code: str) -> bytes:
    """SHA-256 of the code's UTF-8 bytes: what the store keeps and looks up by.

    Lone surrogates (possible in a decoded query string) are hashed, not raised on.
    """
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest()


def make_one_time(
    purpose: str, payload: Mapping[str, Any], now: datetime, ttl: timedelta
) -> tuple[str, OneTimeCode]:
    """A new code and the record to store for it. Show the code once; store only the record.

    ``payload`` is stored as JSON; read it back with :func:`read_payload`.
    """
    require_aware(now)
    if ttl <= timedelta(0):
        raise UsageError("ttl must be positive", field="ttl")
    code = new_code()
    record = OneTimeCode(
        code_hash=code_hash(code),
        purpose=purpose,
        payload=json.dumps(dict(payload), separators=(",", ":"), sort_keys=True),
        created_at=now,
        expires_at=now + ttl,
    )
    return code, record


def check_redeemable(record: OneTimeCode, presented_code: str, purpose: str, now: datetime) -> None:
    """Raise :class:`~lychgate.errors.TokenError` unless ``presented_code`` may redeem ``record``.

    Checked in this order, so nothing about the record is revealed to a wrong code: the code
    (``wrong_code``), the purpose (``wrong_purpose``), earlier use (``replayed``), and expiry
    (``expired``, at ``now >= expires_at``).
    """
    require_aware(now)
    if not isinstance(presented_code, str) or not presented_code:
        fail(Reason.MALFORMED, "one-time code is not a string", field="code")
    if len(presented_code) > MAX_CODE_CHARS:
        fail(Reason.TOO_LARGE, "one-time code is too long", field="code")
    if not hmac.compare_digest(code_hash(presented_code), record.code_hash):
        fail(Reason.WRONG_CODE, "one-time code does not match", field="code")
    if record.purpose != purpose:
        fail(Reason.WRONG_PURPOSE, "one-time code was made for another purpose", field="code")
    if record.used_at is not None:
        fail(Reason.REPLAYED, "one-time code was already used", field="code")
    if now >= record.expires_at:
        fail(Reason.EXPIRED, "one-time code has expired", field="code")


def redeem(record: OneTimeCode, presented_code: str, purpose: str, now: datetime) -> OneTimeCode:
    """:func:`check_redeemable`, then the record as it must be stored: used at ``now``."""
    check_redeemable(record, presented_code, purpose, now)
    return replace(record, used_at=now)


def read_payload(record: OneTimeCode) -> dict[str, Any]:
    """The payload stored by :func:`make_one_time`."""
    value = json.loads(record.payload)
    if not isinstance(value, dict):
        raise UsageError("one-time code payload is not a JSON object", field="payload")
    return value
