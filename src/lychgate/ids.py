"""Typed identifiers. Each is a plain ``str`` at run time, distinct to mypy."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Final, NewType

UserId = NewType("UserId", str)
DeviceId = NewType("DeviceId", str)
AppId = NewType("AppId", str)
AppSlug = NewType("AppSlug", str)
SessionId = NewType("SessionId", str)
LoginRequestId = NewType("LoginRequestId", str)
RegistrationId = NewType("RegistrationId", str)
ApiKeyId = NewType("ApiKeyId", str)
KeyId = NewType("KeyId", str)


_ID_TEXT: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_id_text(value: str) -> bool:
    """Whether ``value`` could be an id or a slug at all: 1-64 of ``[A-Za-z0-9_-]``. Check it
    before looking a client's value up: other bytes would reach the database, and a NUL is
    an error to PostgreSQL (a 503), where it should be a miss (404)."""
    return _ID_TEXT.fullmatch(value) is not None


def new_id(prefix: str = "") -> str:
    """A random, URL-safe identifier with 128 bits of entropy (``secrets``, never ``random``)."""
    return prefix + secrets.token_urlsafe(16)


#: How every session id begins. An app token whose ``sid`` is an id (one signed before tokens
#: named sessions by handle) is refused, so that it never escapes a revocation.
SESSION_ID_PREFIX = "ses_"
_SESSION_ID_LENGTH = len(SESSION_ID_PREFIX) + 22  # new_id: 16 random bytes, base64url


def looks_like_session_id(value: str) -> bool:
    """Whether ``value`` has a session id's form, which no handle has (22 characters: one may
    begin with ``ses_`` too, but is shorter)."""
    return len(value) == _SESSION_ID_LENGTH and value.startswith(SESSION_ID_PREFIX)


def session_handle(session_id: SessionId) -> str:
    """A public name for a session: SHA-256 of the id, truncated (128 bits), base64url.

    A session id is a bearer secret (the browser's authz cookie holds it), so nothing shown
    to a user, written to a log, or put in a token names a session by its id: the API, the
    device, app tokens (their ``sid``), the config feed's sessions to end and the access log
    use this one-way handle instead. The gateway knows sessions by their handles alone.
    """
    digest = hashlib.sha256(b"lychgate session handle\n" + session_id.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def token_sid(session_id: SessionId) -> SessionId:
    """The name of session ``session_id`` in app tokens and the feed: its handle."""
    return SessionId(session_handle(session_id))
