"""Strict JSON for what we verify or apply without asking twice (tokens, the config feed).

RFC 8259 leaves two things open that a lenient parser answers for an attacker: a member name
given twice (which value wins?) and the non-JSON constants ``NaN``/``Infinity``. Both are
refused here. The decoder is built once: ``json.loads`` with hooks would build one per call.
"""

from __future__ import annotations

import json
from typing import Final


class NotAnObject(ValueError):
    """The bytes are not one strict JSON object; the message says which way."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member name")
    return out


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def parse_object(data: bytes) -> dict[str, object]:
    """UTF-8 JSON that must be an object; :class:`NotAnObject` ("is not valid JSON" or "is not
    a JSON object") otherwise."""
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise NotAnObject("is not valid JSON") from None
    if not isinstance(value, dict):
        raise NotAnObject("is not a JSON object")
    return value
