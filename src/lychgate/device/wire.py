"""What the server answers device calls with (docs/sign-in-protocol.md), as frozen values.

Answers are validated on the way in: the device shows them to a person who decides on their
strength, so a malformed answer is an error, not something to display half of. Unknown extra
members are ignored, so the server can add fields without breaking older devices.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final, TypeVar

import httpx
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from lychgate.domain import LoginStatus
from lychgate.errors import LychgateError
from lychgate.ids import AppSlug, DeviceId, LoginRequestId, SessionId, UserId

T = TypeVar("T")

# Unicode categories never shown raw: controls (Cc: newlines, ESC sequences), format
# characters (Cf: bidi overrides, zero-width), and line/paragraph separators.
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
MIN_NUMBER: Final = 10
MAX_NUMBER: Final = 99
CHOICES: Final = 3


@dataclass(frozen=True, slots=True)
class EnrolledUser:
    id: UserId
    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Enrollment:
    """``201`` of ``POST /.lychgate/api/v1/device/enroll``."""

    device_id: DeviceId
    user: EnrolledUser
    public_url: str


@dataclass(frozen=True, slots=True)
class LoginContext:
    """``GET /.lychgate/api/v1/device/login/{id}``: what the person approving should see."""

    id: LoginRequestId
    status: LoginStatus
    browser: str
    ip: str
    app: AppSlug | None
    requested_at: AwareDatetime  # a naive time would be read in the wrong zone
    choices: tuple[int, ...]
    expires_at: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class AppEntry:
    slug: AppSlug
    name: str
    url: str
    description: str = ""
    icon: str = ""


@dataclass(frozen=True, slots=True)
class AppList:
    apps: tuple[AppEntry, ...]


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """One of the user's live sessions. Only ``id`` is required; the rest is for display."""

    id: SessionId
    browser: str = ""
    ip: str = ""
    created_at: AwareDatetime | None = None
    last_seen_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    this_device: bool = False  # signed in by the device asking


@dataclass(frozen=True, slots=True)
class SessionList:
    sessions: tuple[SessionEntry, ...]


@dataclass(frozen=True, slots=True)
class OpenResult:
    """``POST /open``: whether a portal page of the browser got it; None (a server older than
    the field, or one that cannot tell) is unknown."""

    delivered: bool | None = None


@dataclass(frozen=True, slots=True)
class LogoutResult:
    revoked: int


class BadAnswer(LychgateError):
    """The server answered with something that is not what the protocol says."""

    status = 502


def parse(kind: type[T], response: httpx.Response, *, what: str) -> T:
    """Validate a JSON answer as ``kind``; raise :class:`BadAnswer` naming ``what``."""
    try:
        return TypeAdapter(kind).validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadAnswer(f"unexpected answer to {what}: {where}: {first['msg']}") from None


def check_choices(context: LoginContext) -> None:
    """The protocol promises three distinct two-digit numbers; refuse anything else."""
    choices = context.choices
    if (
        len(choices) != CHOICES
        or len(set(choices)) != CHOICES
        or not all(MIN_NUMBER <= n <= MAX_NUMBER for n in choices)
    ):
        raise BadAnswer("the server sent invalid number choices for this sign-in")


def printable(text: str | None, limit: int = 160) -> str:
    """Server-sent text made safe for a terminal: one line, no escapes, at most ``limit``.

    Browser and app fields come from whoever started the sign-in: a User-Agent with a newline,
    an ANSI escape or a bidi override could otherwise draw a fake "IP" line on the approval
    screen. Hidden characters become U+FFFD so that tampering stays visible.
    """
    if not text:
        return ""
    cleaned = "".join(
        "\ufffd" if unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in text[: limit + 1]
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\u2026"
