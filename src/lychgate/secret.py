"""A wrapper that keeps secrets out of logs, reprs and tracebacks."""

from __future__ import annotations

import hmac
from typing import Any, Final

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_REDACTED: Final = "Secret('**********')"


class Secret:
    """Holds a secret string. ``repr`` and ``str`` are redacted; use :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Let settings declare ``Secret`` fields: a plain string in, a ``Secret`` out."""
        from_str = core_schema.no_info_plain_validator_function(_coerce_secret)
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=from_str,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: repr(s)),
        )


def _coerce_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise TypeError("expected a string")
