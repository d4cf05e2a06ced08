"""Strict reading of the feed's JSON: every member present, of the right type, none unknown.

The gateway applies what authz sends without asking twice, so a message that is not exactly
what we expect is refused as a whole (the last good snapshot stays in force) rather than read
with defaults. Errors are :class:`~lychgate.errors.ConfigError` naming the member's path
(``apps[2].host``), never echoing its value: a value may be key material.
"""

from __future__ import annotations

import json
from typing import Final, NoReturn

from lychgate.errors import ConfigError
from lychgate.strictjson import NotAnObject, parse_object

#: Longest feed line we read. A full snapshot takes about 105 bytes a user (more with many
#: groups), 35 a session to end and 400 an app: 16 MiB, the limit before, was reached at
#: 135,000 users, and every gateway then refused each snapshot and soon every request. The
#: line comes from authz, an authenticated peer, so the limit only stops a runaway (a line
#: without end) from taking a worker's memory: 256 MiB of buffer at most, dropped with the
#: connection. A real snapshot that size (two million users) would hold about 1 GiB once read,
#: so memory, not this limit, is what bounds a deployment.
MAX_LINE_BYTES: Final = 256 * 1024 * 1024


def fail(message: str, where: str) -> NoReturn:
    raise ConfigError(message, field=where)


def loads(data: bytes, where: str = "message") -> dict[str, object]:
    """Parse one JSON object: UTF-8, no duplicate names, no NaN/Infinity (RFC 8259)."""
    if len(data) > MAX_LINE_BYTES:
        fail("is too large", where)
    try:
        return parse_object(data)
    except NotAnObject as exc:
        fail(str(exc), where)


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON, refusing NaN/Infinity."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


class Members:
    """Reads the members of one JSON object; :meth:`done` refuses any that were not read."""

    __slots__ = ("_seen", "_value", "_where")

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            fail("must be an object", where)
        self._value: dict[str, object] = value
        self._where = where
        self._seen: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def has(self, name: str) -> bool:
        """Whether the object has ``name`` at all (for members that may be left out)."""
        return name in self._value

    def raw(self, name: str) -> object:
        if name not in self._value:
            fail("is missing", self.path(name))
        self._seen.add(name)
        return self._value[name]

    def text(self, name: str, *, empty: bool = False) -> str:
        value = self.raw(name)
        if not isinstance(value, str) or not (value or empty):
            fail("must be a non-empty string" if not empty else "must be a string", self.path(name))
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            fail("must be a non-empty string or null", self.path(name))
        return value

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            fail("must be true or false", self.path(name))
        return value

    def integer(self, name: str, *, minimum: int = 0) -> int:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            fail(f"must be an integer >= {minimum}", self.path(name))
        return value

    def optional_integer(self, name: str, *, minimum: int = 0) -> int | None:
        if self.raw(name) is None:
            return None
        return self.integer(name, minimum=minimum)

    def number(self, name: str) -> float:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            fail("must be a non-negative number", self.path(name))
        return float(value)

    def optional_positive(self, name: str) -> float | None:
        if self.raw(name) is None:
            return None
        value = self.number(name)
        if value <= 0:
            fail("must be a positive number or null", self.path(name))
        return value

    def array(self, name: str) -> list[object]:
        value = self.raw(name)
        if not isinstance(value, list):
            fail("must be an array", self.path(name))
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        items = self.array(name)
        if not all(isinstance(item, str) and item for item in items):
            fail("must be an array of non-empty strings", self.path(name))
        return tuple(str(item) for item in items)

    def done(self) -> None:
        """Refuse members nobody read (an unknown field means we do not understand the data)."""
        unknown = sorted(set(self._value) - self._seen)
        if unknown:
            fail(f"has unknown members: {', '.join(unknown)}", self._where or "message")
