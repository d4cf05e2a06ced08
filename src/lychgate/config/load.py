"""Build :class:`Settings` from the data directory's ``lychgate.toml`` and the environment.

Precedence, highest first: explicit overrides (CLI flags), ``LYCHGATE_*`` environment variables,
``<data_dir>/lychgate.toml``, defaults. Nested keys use ``__`` in the environment
(``LYCHGATE_LIMITS__MAX_BODY_BYTES``) and tables in TOML (``[limits]``).

Every failure becomes a :class:`~lychgate.errors.ConfigError` that names the key and where its
bad value came from (the flag, the variable or the file: :class:`_Sources`), so a typo is
caught at start-up rather than silently ignored, and the operator edits the right place.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)

from lychgate.config.file_types import check_file_types, toml_literal
from lychgate.config.paths import DATA_DIR_ENV, resolve_data_dir
from lychgate.config.settings import SETTINGS_CONFLICT, Limits, Settings
from lychgate.errors import ConfigError

CONFIG_FILE = "lychgate.toml"
ENV_PREFIX = "LYCHGATE_"
# Variables with our prefix that are not settings: the test harness's own.
_NOT_SETTINGS = ("LYCHGATE_TEST_",)
# Variables with our prefix that other parts of the CLI read, not the server: one shell often
# runs both the server commands and the device (``lychgate device --key``'s default is
# ``$LYCHGATE_DEVICE_KEY``, :data:`lychgate.device.keyfile.KEY_ENV`; config must not import
# the device, so the name is repeated here and a test keeps the two equal).
CLIENT_ENV_NAMES = frozenset({"LYCHGATE_DEVICE_KEY"})


@dataclass(frozen=True, slots=True)
class FromFlag:
    """An override with the flag that gave it, where that is not ``--the-setting``
    (``lychgate authz --listen`` sets ``authz_listen``): errors then name the flag typed."""

    flag: str
    value: Any


def load_settings(
    data_dir: Path | None,
    env: Mapping[str, str],
    **overrides: Any,
) -> Settings:
    """Load the settings for the deployment in ``data_dir`` (default: see ``default_data_dir``).

    ``env`` must be the process environment (``os.environ``); it is passed in so that reading
    it is visibly the caller's act. ``overrides`` whose value is None are ignored. They are
    the command line's: an error names one as ``--the-setting``, or as its :class:`FromFlag`.
    """
    directory = resolve_data_dir(data_dir, env)
    _check_env_keys(env)
    toml_path = directory / CONFIG_FILE
    file_values = _read_toml(toml_path)
    _refuse_data_dir(file_values, toml_path)
    check_file_types(file_values, toml_path)
    init: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for key, given in overrides.items():
        flag, value = (given.flag, given.value) if isinstance(given, FromFlag) else (None, given)
        if value is not None:
            init[key] = value
            flags[key] = flag or "--" + key.replace("_", "-")
    sources = _Sources(flags, {k.upper(): v for k, v in env.items()}, toml_path, file_values)
    init["data_dir"] = directory
    try:
        return _settings_class(env, toml_path if file_values else None)(**init)
    except ValidationError as exc:
        raise _config_error(exc, sources) from None
    except SettingsError as exc:  # a LYCHGATE_LIMITS that is not JSON: pydantic-settings parses
        raise _parse_error(exc, sources) from None


def _settings_class(env: Mapping[str, str], toml_path: Path | None) -> type[Settings]:
    """A Settings subclass whose sources are init, ``env``, then the TOML file."""

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            from_env = EnvSettingsSource(settings_cls)
            # Read the mapping we were given, not os.environ (names match case-insensitively).
            from_env.env_vars = {k.lower(): v for k, v in env.items()}
            sources: list[PydanticBaseSettingsSource] = [init_settings, from_env]
            if toml_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            return tuple(sources)

    _Loaded.__name__ = "Settings"
    return _Loaded


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's values; none when it does not exist. One that cannot be read (a directory
    of that name, no permission) is a ConfigError naming it, not a traceback."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory: it must be the settings file (move it away, and "
            "`lychgate init` writes one)",
            field=CONFIG_FILE,
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", field=CONFIG_FILE) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", field=CONFIG_FILE) from None


def _refuse_data_dir(file_values: Mapping[str, Any], toml_path: Path) -> None:
    """The data directory is the one that holds the file: a ``data_dir`` in it was silently
    replaced by ``--dir`` (the settings' field exists for the rest of the code to read)."""
    if "data_dir" in file_values:
        raise ConfigError(
            f"not a setting in {toml_path}: the data directory is the one that holds this "
            f"file, chosen with --dir (or {DATA_DIR_ENV})",
            field="data_dir",
        )


def _known_env_names() -> set[str]:
    names = set()
    for name in Settings.model_fields:
        names.add(ENV_PREFIX + name.upper())
    for name in Limits.model_fields:
        names.add(f"{ENV_PREFIX}LIMITS__{name.upper()}")
    return names


def _check_env_keys(env: Mapping[str, str]) -> None:
    """Refuse a ``LYCHGATE_*`` variable that names no setting (a typo would otherwise be
    ignored), except the test harness's and the ones the device CLI reads."""
    known = _known_env_names()
    for key in env:
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(_NOT_SETTINGS):
            continue
        if upper in CLIENT_ENV_NAMES:
            continue
        if upper not in known:
            raise ConfigError("unknown setting in the environment", field=key)


@dataclass(frozen=True, slots=True)
class _Sources:
    """Where values came from, to blame the one a bad value came from: the same precedence
    as the settings sources (flags, then the environment, then the file)."""

    flags: Mapping[str, str]  # setting -> the flag that set it
    env: Mapping[str, str]  # upper-cased names, as the environment source matches them
    toml_path: Path
    file_values: Mapping[str, Any]

    def of(self, loc: tuple[str, ...]) -> str:
        """Where the value at ``loc`` (``("limits", "max_body_bytes")``) came from: "from
        --listen", "in environment variable LYCHGATE_LISTEN", "in /srv/lychgate.toml"."""
        return self.given(loc) or "in settings"

    def given(self, loc: tuple[str, ...]) -> str | None:
        """As :meth:`of`, or None when no source gave the value: it is the default."""
        if loc and loc[0] in self.flags:
            return f"from {self.flags[loc[0]]}"
        # The most specific variable wins: LYCHGATE_LIMITS__MAX_BODY_BYTES over a JSON
        # LYCHGATE_LIMITS, which holds the key only if its JSON says so.
        for depth in range(len(loc), 0, -1):  # none for loc (), the model's own checks
            name = ENV_PREFIX + "__".join(part.upper() for part in loc[:depth])
            if name in self.env and (
                depth == len(loc) or _holds(_json(self.env[name]), loc[depth:])
            ):
                return f"in environment variable {name}"
        if loc and _holds(self.file_values, loc):
            return f"in {self.toml_path}"
        return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _holds(values: Any, loc: tuple[str, ...]) -> bool:
    for part in loc:
        if not isinstance(values, Mapping) or part not in values:
            return False
        values = values[part]
    return True


def _config_error(exc: ValidationError, sources: _Sources) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    key = ".".join(loc)
    where = sources.of(loc)
    what = first["msg"].removeprefix("Value error, ")
    if first["type"] == SETTINGS_CONFLICT:
        message = f"invalid settings: {what}: {_compared(first.get('ctx', {}), sources)}"
    elif not key:
        message = f"invalid settings: {what}"
    elif first["type"] == "extra_forbidden":
        message = f"unknown setting {key!r} {where}"
    else:
        hint = _HINTS.get(first["type"])
        message = f"invalid value for {key!r} {where}: {what}" + (f": {hint}" if hint else "")
    return ConfigError(message, field=key or None)


# What to write instead, where pydantic's words say only what is wrong.
_BOOLEAN = "write true or false (in the environment also 1/0, yes/no, on/off)"
_HINTS: Final = {
    "bool_parsing": _BOOLEAN,
    "bool_type": _BOOLEAN,
    "string_type": "write it as a string, in quotes",
}


def _compared(context: Mapping[str, Any], sources: _Sources) -> str:
    """The values a check across settings compared, and where each came from: ``session_ttl =
    3600 in /srv/lychgate.toml, app_token_ttl = 7200 in environment variable ...``."""
    compared: Mapping[str, Any] = context.get("settings", {})
    return ", ".join(_one_compared(key, value, sources) for key, value in compared.items())


def _one_compared(key: str, value: Any, sources: _Sources) -> str:
    if value is None:
        return f"{key} not set"
    return f"{key} = {toml_literal(value)} {sources.given((key,)) or 'by default'}"


# pydantic-settings' words for a value it could not decode: a nested setting given in the
# environment as JSON that is not.
_UNPARSED = re.compile(r'error parsing value for field "(?P<field>[^"]+)"')


def _parse_error(exc: SettingsError, sources: _Sources) -> ConfigError:
    found = _UNPARSED.search(str(exc))
    if found is None:
        return ConfigError(f"invalid settings: {exc}")
    key = found["field"]
    why = f"not valid JSON ({exc.__cause__})" if exc.__cause__ else "cannot be read"
    return ConfigError(f"invalid value for {key!r} {sources.of((key,))}: {why}", field=key)
