"""Build :class:`Settings` from the data directory's ``lychgate.toml`` and the environment.

Precedence, highest first: explicit overrides (CLI flags), ``LYCHGATE_*`` environment variables,
``<data_dir>/lychgate.toml``, defaults. Nested keys use ``__`` in the environment
(``LYCHGATE_LIMITS__MAX_BODY_BYTES``) and tables in TOML (``[limits]``).

Every failure becomes a :class:`~lychgate.errors.ConfigError` that names the key and where it
came from, so a typo is caught at start-up rather than silently ignored.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from lychgate.config.paths import default_data_dir
from lychgate.config.settings import Limits, Settings
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


def load_settings(
    data_dir: Path | None,
    env: Mapping[str, str],
    **overrides: Any,
) -> Settings:
    """Load the settings for the deployment in ``data_dir`` (default: see ``default_data_dir``).

    ``env`` must be the process environment (``os.environ``); it is passed in so that reading
    it is visibly the caller's act. ``overrides`` whose value is None are ignored.
    """
    directory = (data_dir or default_data_dir(env)).expanduser().resolve()
    _check_env_keys(env)
    toml_path = directory / CONFIG_FILE
    file_values = _read_toml(toml_path)
    init = {k: v for k, v in overrides.items() if v is not None}
    init["data_dir"] = directory
    try:
        return _settings_class(env, toml_path if file_values else None)(**init)
    except ValidationError as exc:
        raise _config_error(exc, toml_path, file_values, env) from None


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
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", field=CONFIG_FILE) from None


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


def _config_error(
    exc: ValidationError, toml_path: Path, file_values: Mapping[str, Any], env: Mapping[str, str]
) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    env_name = ENV_PREFIX + key.upper().replace(".", "__")
    top = str(first["loc"][0]) if first["loc"] else ""
    if any(k.upper() == env_name for k in env):
        where = f"environment variable {env_name}"
    elif top in file_values:
        where = str(toml_path)
    else:
        where = "settings"
    if not key:
        message = f"invalid settings: {first['msg'].removeprefix('Value error, ')}"
    elif first["type"] == "extra_forbidden":
        message = f"unknown setting {key!r} in {where}"
    else:
        message = f"invalid value for {key!r} in {where}: {first['msg']}"
    return ConfigError(message, field=key or None)
