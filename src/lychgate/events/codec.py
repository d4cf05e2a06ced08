"""The wire form of events: small, flat JSON with a closed registry of types.

Wire form (ASCII only, keys sorted, no whitespace)::

    {"data":{"device_id":"...","login_id":"...","user_id":"..."},"type":"login.approved"}

The ``type`` names below are a protocol between authz replicas that may run different versions
during a rolling upgrade: never rename one; add a new name instead. A replica that receives a
name it does not know rejects the payload (and the PostgreSQL listener logs and drops it), so an
old replica ignores a new event rather than misreading it.

Errors:

- :func:`decode` raises :class:`EventDecodeError` (a :class:`~lychgate.errors.ClientError`) for
  anything but a well-formed, registered event. A payload arrives from outside this process
  (anyone who can ``NOTIFY`` on the database), so it is treated as client input: checked
  strictly, never trusted, never allowed to crash the reader.
- :func:`encode` raises :class:`~lychgate.errors.UsageError` for an unregistered type, an empty
  or non-string field, or a payload over :data:`MAX_PAYLOAD_BYTES`. These are our own bugs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from lychgate.errors import ClientError, UsageError
from lychgate.events.types import (
    ConfigChanged,
    Event,
    LoginApproved,
    LoginDenied,
    OpenApp,
    SessionRevoked,
)

MAX_PAYLOAD_BYTES: Final = 7999
"""PostgreSQL: a NOTIFY payload "must be shorter than 8000 bytes" in the default configuration
(SQL command reference, NOTIFY). Both buses enforce it, so an event that works in-process also
works across replicas."""

_REGISTRY: Final[Mapping[str, type[Event]]] = {
    "login.approved": LoginApproved,
    "login.denied": LoginDenied,
    "session.revoked": SessionRevoked,
    "config.changed": ConfigChanged,
    "app.open": OpenApp,
}
_NAMES: Final[Mapping[type[Event], str]] = {cls: name for name, cls in _REGISTRY.items()}
_FIELDS: Final[Mapping[type[Event], frozenset[str]]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in _REGISTRY.values()
}


class EventDecodeError(ClientError):
    """An event payload is not JSON, not a registered event type, or has bad fields.

    ``field`` names the offending part (``type``, ``data.login_id``...) when there is one. The
    message never echoes the payload, which is untrusted and may be large.
    """


def encode(event: Event) -> str:
    """Serialize ``event`` to its wire form (ASCII JSON, at most :data:`MAX_PAYLOAD_BYTES`)."""
    cls = type(event)
    name = _NAMES.get(cls)
    if name is None:
        raise UsageError(f"{cls.__name__} is not a registered event type", field="event")
    data: dict[str, str] = {}
    for key in _FIELDS[cls]:
        value = getattr(event, key)
        if not isinstance(value, str) or not value:
            raise UsageError(f"{name}: field must be a non-empty string", field=key)
        data[key] = value
    # ensure_ascii: the byte length is the character length, and no client_encoding can mangle it.
    text = json.dumps(
        {"type": name, "data": data}, ensure_ascii=True, separators=(",", ":"), sort_keys=True
    )
    if len(text) > MAX_PAYLOAD_BYTES:
        raise UsageError(
            f"{name} event encodes to {len(text)} bytes; the limit is {MAX_PAYLOAD_BYTES}",
            field="event",
        )
    return text


def decode(payload: str) -> Event:
    """Parse a wire payload back into an event; raise :class:`EventDecodeError` if it is bad."""
    if not isinstance(payload, str):
        _fail(f"payload must be str, not {type(payload).__name__}")
    try:
        size = len(payload.encode("utf-8"))
    except UnicodeEncodeError:
        _fail("payload is not valid UTF-8 text")
    if size > MAX_PAYLOAD_BYTES:
        _fail(f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        doc = json.loads(payload, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        _fail(f"payload is not valid JSON ({type(exc).__name__})")

    if not isinstance(doc, dict) or doc.keys() != {"type", "data"}:
        _fail('payload must be an object with exactly "type" and "data"')
    name = doc["type"]
    if not isinstance(name, str):
        _fail("event type must be a string", field="type")
    cls = _REGISTRY.get(name)
    if cls is None:
        # Bounded: the whole payload is under MAX_PAYLOAD_BYTES; repr() keeps it on one line.
        _fail(f"unknown event type {name[:64]!r}", field="type")
    data = doc["data"]
    if not isinstance(data, dict):
        _fail("event data must be an object", field="data")
    expected = _FIELDS[cls]
    if data.keys() != expected:
        missing = sorted(expected - data.keys())
        extra = sorted(data.keys() - expected)
        _fail(f"{name}: missing fields {missing}, unexpected fields {extra}", field="data")
    for key in sorted(expected):
        value = data[key]
        if not isinstance(value, str) or not value:
            _fail(f"{name}: field must be a non-empty string", field=f"data.{key}")
    kwargs: dict[str, Any] = data  # every value was just checked to be a non-empty str
    return cls(**kwargs)


def _fail(message: str, *, field: str | None = None) -> NoReturn:
    raise EventDecodeError(message, field=field)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that disagree about which duplicate wins are a classic differential; refuse.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
