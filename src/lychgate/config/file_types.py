"""``lychgate.toml`` holds typed values: a number setting takes a TOML number, a switch
``true`` or ``false``, and nothing else.

The settings model is lax on purpose, because environment variables are text
(``LYCHGATE_WORKERS=4``, ``LYCHGATE_ACCESS_LOG=true``). The file is not: there
``access_log = "yes"`` or ``session_ttl = "3600"`` is a quoting slip, and pydantic read
both without a word. :func:`check_file_types` refuses them before the model sees the file,
naming the key and the file. (``true`` for a number is refused from every source by the
model itself: :data:`lychgate.config.settings.Int`.)
"""

from __future__ import annotations

import datetime
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lychgate.config.settings import Settings
from lychgate.errors import ConfigError

_NUMBER_TYPES = (int, float)


def check_file_types(values: Mapping[str, Any], path: Path) -> None:
    """Refuse a value in the file whose TOML type is not its setting's (a number, a switch).

    Every value in the file is checked, also one an environment variable overrides now: it
    is read again the day that variable is unset.
    """
    _check_table(Settings, values, (), path)


def _check_table(
    model: type[BaseModel], values: Mapping[str, Any], prefix: tuple[str, ...], path: Path
) -> None:
    for key, value in values.items():
        field = model.model_fields.get(key)
        if field is None:  # an unknown key: the model names it
            continue
        loc = (*prefix, key)
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if isinstance(value, Mapping):
                _check_table(kind, value, loc, path)
        elif kind is bool and type(value) is not bool:
            _refuse(loc, path, value, "true or false", (bool,))
        elif kind in _NUMBER_TYPES and type(value) not in _NUMBER_TYPES:
            _refuse(loc, path, value, "a number", _NUMBER_TYPES)


def _refuse(
    loc: tuple[str, ...], path: Path, value: Any, expected: str, types: tuple[type, ...]
) -> None:
    key = ".".join(loc)
    hint = " (write it without quotes)" if _fits_unquoted(value, types) else ""
    raise ConfigError(
        f"invalid value for {key!r} in {path}: expected {expected}, got "
        f"{toml_literal(value)}, {_toml_kind(value)}{hint}",
        field=key,
    )


def _fits_unquoted(value: Any, types: tuple[type, ...]) -> bool:
    """Whether ``value`` is a string that, its quotes removed, is a TOML value of ``types``
    (``"3600"``, ``"true"``): then the fix is to drop the quotes, and the error says so."""
    if not isinstance(value, str):
        return False
    try:
        parsed = tomllib.loads(f"v = {value}")
    except tomllib.TOMLDecodeError:
        return False
    return list(parsed) == ["v"] and type(parsed["v"]) in types


def toml_literal(value: Any) -> str:
    """``value`` as an operator would write it in the file: ``true``, ``"yes"``, ``3600``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    return str(value)


def _toml_kind(value: Any) -> str:
    """The TOML type's name (the spec's words), which says why a value that looks right is not."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (str, "a string"),
        (int, "an integer"),
        (float, "a float"),
        ((datetime.date, datetime.time), "a date or time"),
        (list, "an array"),
        (dict, "a table"),
    ]
    return next((name for kind, name in kinds if isinstance(value, kind)), "a value")
