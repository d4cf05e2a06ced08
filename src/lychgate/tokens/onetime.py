"""One-time codes and links: handoff codes, enrollment and admin setup links.

Theory of operation. A code is 256 random bits from :mod:`secrets`, URL-safe, shown once and
never stored. The store keeps only its SHA-256. A fast hash is enough here, unlike for
passwords: a full-entropy code leaves nothing to guess, so the hash only has to be one-way.

Redeeming is one step in the store: a conditional ``UPDATE ... WHERE code_hash = :hash AND
purpose = :purpose AND used_at IS NULL AND expires_at > :now RETURNING``, so a wrong code, a
code made for another purpose, a used one and an expired one all match no row, and of two
racing redeemers only one wins (SECURITY.md item 6). The code is never compared itself, only
found by its hash: what a lookup's timing could tell is how much of a SHA-256 matched, which
says nothing about a code that would.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from lychgate.domain import OneTimeCode
from lychgate.errors import UsageError
from lychgate.tokens.clock import require_aware

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


def read_payload(record: OneTimeCode) -> dict[str, Any]:
    """The payload stored by :func:`make_one_time`."""
    value = json.loads(record.payload)
    if not isinstance(value, dict):
        raise UsageError("one-time code payload is not a JSON object", field="payload")
    return value
