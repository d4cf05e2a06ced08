"""Request and response bodies of the browser's login API (docs/sign-in-protocol.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from lychgate.domain import LoginStatus

#: Generous: ``safe_redirect`` refuses anything over 2048 characters, which then means "the
#: portal" rather than a validation error, as every other refused ``rd`` does.
MAX_RD_CHARS: Final = 8192


class LoginIn(BaseModel):
    """Start a login request. ``rd`` is where to go afterwards; refused or absent: the portal."""

    model_config = ConfigDict(extra="forbid")

    rd: str | None = Field(default=None, max_length=MAX_RD_CHARS)


class LoginCreated(BaseModel):
    """A new login request. ``login_url`` is what the QR code holds."""

    id: str
    login_url: str
    number: int = Field(ge=10, le=99, description="The two-digit number to pick on the device.")
    expires_at: datetime


class LoginStatusOut(BaseModel):
    status: LoginStatus


class FinishIn(BaseModel):
    """The finish call takes no fields; an empty JSON object (or no body) is fine."""

    model_config = ConfigDict(extra="forbid")


class RedirectOut(BaseModel):
    """Where the browser goes next: a handoff URL for an app, or the portal."""

    redirect: str


class ErrorOut(BaseModel):
    """Every error answer: a short machine-readable code."""

    detail: str


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    return {status: {"model": ErrorOut} for status in statuses}
