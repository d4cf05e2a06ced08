"""Request bodies of the device API (docs/sign-in-protocol.md) and the wire's time format."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

#: Longest id (login request, session) looked up; ours are far shorter.
MAX_ID = 128


def rfc3339(at: datetime) -> str:
    """UTC, whole seconds, ``Z`` suffix (RFC 3339 section 5.6)."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApproveIn(_Body):
    number: int = Field(ge=0, le=999, strict=True)


class OpenIn(_Body):
    slug: str = Field(min_length=1, max_length=100)
