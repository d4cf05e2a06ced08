"""A configuration error names where its bad value came from: the flag, the variable or the
file, as the settings sources' precedence picks it (lychgate.config.load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lychgate.config import load_settings
from lychgate.config.load import FromFlag
from lychgate.errors import ConfigError


def write_toml(data_dir: Path, text: str) -> None:
    (data_dir / "lychgate.toml").write_text(text)


def error(data_dir: Path, env: dict[str, str], **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir, env, **overrides)
    return caught.value


def test_a_bad_flag_is_blamed_on_the_flag_not_the_file(data_dir: Path) -> None:
    # `serve --listen nope` was reported as a bad value in lychgate.toml, whose was good.
    write_toml(data_dir, 'listen = "127.0.0.1:8080"\n')
    err = error(data_dir, {}, listen="nope")
    assert str(err) == "listen: invalid value for 'listen' from --listen: expected HOST:PORT, " + (
        "got 'nope'"
    )


def test_a_bad_flag_is_blamed_on_the_flag_not_the_variable(data_dir: Path) -> None:
    err = error(data_dir, {"LYCHGATE_LISTEN": "127.0.0.1:8080"}, listen="bad")
    assert "from --listen" in str(err)
    assert "LYCHGATE_LISTEN" not in str(err)


def test_a_flag_named_otherwise_than_its_setting_is_named_as_typed(data_dir: Path) -> None:
    # `lychgate authz --listen https://x:1` said "in settings".
    err = error(data_dir, {}, authz_listen=FromFlag("--listen", "https://x:1"))
    assert err.field == "authz_listen"
    assert "'authz_listen' from --listen: expected HOST:PORT or unix:/path" in str(err)
    assert error(data_dir, {}, authz_listen="https://x:1").message.startswith(
        "invalid value for 'authz_listen' from --authz-listen:"  # as `init` spells it
    )


def test_a_flag_not_given_is_no_override(data_dir: Path) -> None:
    write_toml(data_dir, 'listen = "127.0.0.1:9000"\n')
    settings = load_settings(data_dir, {}, listen=FromFlag("--listen", None))
    assert settings.listen == "127.0.0.1:9000"


def test_a_bad_variable_is_blamed_on_the_variable_not_the_file(data_dir: Path) -> None:
    write_toml(data_dir, 'listen = "127.0.0.1:8080"\n')
    err = error(data_dir, {"LYCHGATE_LISTEN": "bad"})
    assert "'listen' in environment variable LYCHGATE_LISTEN:" in str(err)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LYCHGATE_LIMITS": '{"max_body_bytes": -1}'}, "LYCHGATE_LIMITS"),
        ({"LYCHGATE_LIMITS__MAX_BODY_BYTES": "-1"}, "LYCHGATE_LIMITS__MAX_BODY_BYTES"),
        (  # the nested variable wins over the JSON one, so it holds the value used
            {"LYCHGATE_LIMITS": '{"max_body_bytes": 5}', "LYCHGATE_LIMITS__MAX_BODY_BYTES": "-1"},
            "LYCHGATE_LIMITS__MAX_BODY_BYTES",
        ),
    ],
)
def test_a_bad_nested_value_names_its_variable(
    data_dir: Path, env: dict[str, str], named: str
) -> None:
    # LYCHGATE_LIMITS='{"max_body_bytes":-1}' said "in settings" and named no variable.
    err = error(data_dir, env)
    assert err.field == "limits.max_body_bytes"
    assert f"'limits.max_body_bytes' in environment variable {named}:" in str(err)


def test_a_nested_value_the_variable_does_not_hold_is_blamed_on_the_file(data_dir: Path) -> None:
    write_toml(data_dir, "[limits]\nmax_body_bytes = -1\n")
    err = error(data_dir, {"LYCHGATE_LIMITS": '{"header_timeout": 2}'})
    assert f"'limits.max_body_bytes' in {data_dir / 'lychgate.toml'}:" in str(err)


def test_an_unknown_nested_key_in_a_variable_names_the_variable(data_dir: Path) -> None:
    err = error(data_dir, {"LYCHGATE_LIMITS": '{"max_hedaers": 5}'})
    assert str(err) == (
        "limits.max_hedaers: unknown setting 'limits.max_hedaers' in environment variable "
        "LYCHGATE_LIMITS"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"LYCHGATE_LIMITS": "notjson"},
        {"LYCHGATE_LIMITS": ""},
        {"lychgate_limits": "[1,"},  # named in any case, as every variable
    ],
)
def test_a_variable_that_is_not_json_is_one_config_error(
    data_dir: Path, env: dict[str, str]
) -> None:
    # pydantic-settings' SettingsError came out as a traceback.
    err = error(data_dir, env)
    assert err.field == "limits"
    assert err.message.startswith(
        "invalid value for 'limits' in environment variable LYCHGATE_LIMITS: not valid JSON ("
    )


def test_data_dir_in_the_file_is_refused(data_dir: Path) -> None:
    # It was silently replaced by --dir: the operator believed the data lived elsewhere.
    write_toml(data_dir, 'data_dir = "/elsewhere"\n')
    err = error(data_dir, {})
    assert err.field == "data_dir"
    assert "chosen with --dir (or LYCHGATE_DATA_DIR)" in str(err)
    assert str(data_dir / "lychgate.toml") in str(err)
