"""Reading the server's answers to the device: a non-2xx answer becomes a clear error.

The server's own words (sanitized: they go to a terminal) say best what went wrong; the
caller's message for the status is the fallback. A refused signature says only
``device_auth`` whatever failed (docs/sign-in-protocol.md), so the advice for it is ours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from lychgate.device.wire import BadAnswer
from lychgate.devicesig import REPLAYED, DeviceAuthError
from lychgate.errors import ClientError, Conflict, LychgateError, NotFound, RateLimited
from lychgate.request_log import ID_FIELD, one_id

# Server-sent text that ends up in an error message: no markup, escapes or control characters.
_UNSAFE_DETAIL_RE: Final = re.compile(r"[^A-Za-z0-9 _.,:;'()/+=-]")

_DEVICE_REFUSED: Final = (
    "the server refused this device: it may have been revoked, its user disabled, or this key "
    "file is not the one enrolled; also check this computer's clock (it must be within 60 s)"
)

_REPLAYED: Final = (
    "the server has already acted on this very request (the same call, signed in the same "
    "second, was sent before); wait a second and run the command again"
)


def check_answer(
    response: httpx.Response, *, what: str, messages: Mapping[int, str] | None = None
) -> None:
    """Turn a non-2xx answer into the matching :class:`LychgateError`, with a clear message."""
    status = response.status_code
    if 200 <= status < 300:
        return
    # The server's own message (sanitized) says best what went wrong; ours is the fallback.
    detail = server_detail(response) or (messages or {}).get(status, "")
    if status == 401:
        # A refused signature is a bare {"error": "device_auth"}, whatever failed, but for a
        # replay, which says so.
        if messages and 401 in messages:
            raise ClientError(f"{what}: {detail}", status=401)
        if is_replay_refusal(response):
            raise DeviceAuthError(_REPLAYED)
        raise DeviceAuthError(_DEVICE_REFUSED)
    if status == 404:
        raise NotFound(f"{what}: {detail or 'not found'}")
    if status == 409:
        raise Conflict(f"{what}: {detail or 'refused'}")
    if status == 429:
        wait = retry_after(response)
        raise RateLimited(f"too many attempts; try again in {wait} s", retry_after=wait)
    if 300 <= status < 400:
        raise BadAnswer(f"{what}: the server answered with a redirect ({status}); not following")
    if 400 <= status < 500:
        raise ClientError(f"{what}: {detail or 'refused'} ({status})", status=status)
    raise LychgateError(f"{what}: the server failed ({status}{_quoted_id(response)})", status=502)


def _quoted_id(response: httpx.Response) -> str:
    """``; request id X`` for an answer whose ``X-Request-Id`` (the gateway's) has the shape
    the gateway gives it, for the user to quote to whoever runs the server; else nothing (the
    value goes to a terminal)."""
    rid = one_id(response.headers.get_list(ID_FIELD))
    return f"; request id {rid}" if rid else ""


def error_kind(response: httpx.Response) -> str | None:
    """The ``error`` of a JSON error answer (``code_refused``, ``wrong_number``...), if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    kind = body.get("error") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) else None


def is_replay_refusal(response: httpx.Response) -> bool:
    """Whether the server refused a signed call as one it had acted on already."""
    if response.status_code != 401:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("detail") == REPLAYED


def server_detail(response: httpx.Response) -> str:
    """The ``message`` (else ``error`` or ``detail``) of a JSON error answer, made safe to
    print, or ""."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    value = body.get("message") or body.get("error") or body.get("detail")
    if not isinstance(value, str):
        return ""
    return _UNSAFE_DETAIL_RE.sub("?", value)[:200]


def retry_after(response: httpx.Response) -> int:
    """Seconds to wait from ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date);
    60 when it is missing or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        return max(1, min(int(value), 86_400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 60
    return max(1, min(int(when.timestamp() - time.time()) + 1, 86_400))
