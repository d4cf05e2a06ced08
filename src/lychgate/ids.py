"""Typed identifiers. Each is a plain ``str`` at run time, distinct to mypy."""

from __future__ import annotations

import secrets
from typing import NewType

UserId = NewType("UserId", str)
DeviceId = NewType("DeviceId", str)
AppId = NewType("AppId", str)
AppSlug = NewType("AppSlug", str)
SessionId = NewType("SessionId", str)
LoginRequestId = NewType("LoginRequestId", str)
RegistrationId = NewType("RegistrationId", str)
ApiKeyId = NewType("ApiKeyId", str)
KeyId = NewType("KeyId", str)


def new_id(prefix: str = "") -> str:
    """A random, URL-safe identifier with 128 bits of entropy (``secrets``, never ``random``)."""
    return prefix + secrets.token_urlsafe(16)
