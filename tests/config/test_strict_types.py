"""A number setting takes a number and a switch true or false: ``session_ttl = true`` was read
as a one-second session and ``access_log = "yes"`` as true. The file has real types and is
held to them; environment variables are text, and take the usual spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lychgate.config import Limits, Settings, load_settings
from lychgate.errors import ConfigError


def write_toml(data_dir: Path, text: str) -> Path:
    path = data_dir / "lychgate.toml"
    path.write_text(text)
    return path


def error(data_dir: Path, env: dict[str, str], **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir, env, **overrides)
    return caught.value


def fields_of(kinds: tuple[type, ...]) -> list[str]:
    """Every setting of these types, as its TOML line's key (``limits.header_timeout``)."""
    top = [n for n, f in Settings.model_fields.items() if f.annotation in kinds]
    nested = [f"limits.{n}" for n, f in Limits.model_fields.items() if f.annotation in kinds]
    return top + nested


def toml_line(key: str, value: str) -> str:
    table, _, name = key.rpartition(".")
    return f"[{table}]\n{name} = {value}\n" if table else f"{key} = {value}\n"


NUMBERS = fields_of((int, float))
SWITCHES = fields_of((bool,))


def test_the_settings_checked_are_all_there() -> None:
    assert {"session_ttl", "workers", "limits.header_timeout"} <= set(NUMBERS)
    assert set(SWITCHES) == {"access_log", "allow_insecure_http", "proxy_protocol"}


@pytest.mark.parametrize("key", NUMBERS)
@pytest.mark.parametrize("value", ["true", "false"])
def test_true_or_false_for_a_number_in_the_file_is_refused(
    data_dir: Path, key: str, value: str
) -> None:
    path = write_toml(data_dir, toml_line(key, value))
    err = error(data_dir, {})
    assert err.field == key
    assert str(err) == (
        f"{key}: invalid value for {key!r} in {path}: expected a number, got {value}, a boolean"
    )


@pytest.mark.parametrize("key", NUMBERS)
def test_a_quoted_number_in_the_file_is_refused(data_dir: Path, key: str) -> None:
    path = write_toml(data_dir, toml_line(key, '"20"'))
    assert str(error(data_dir, {})) == (
        f'{key}: invalid value for {key!r} in {path}: expected a number, got "20", a string '
        "(write it without quotes)"
    )


@pytest.mark.parametrize("key", SWITCHES)
@pytest.mark.parametrize(
    ("value", "got"),
    [
        ('"yes"', '"yes", a string'),
        ('"true"', '"true", a string (write it without quotes)'),
        ("1", "1, an integer"),
        ("0", "0, an integer"),
        ("[true]", "[True], an array"),
    ],
)
def test_anything_but_true_or_false_for_a_switch_in_the_file_is_refused(
    data_dir: Path, key: str, value: str, got: str
) -> None:
    path = write_toml(data_dir, toml_line(key, value))
    err = error(data_dir, {})
    assert err.field == key
    assert (
        str(err) == f"{key}: invalid value for {key!r} in {path}: expected true or false, got {got}"
    )


def test_a_bad_type_in_the_file_is_refused_even_when_a_variable_overrides_it(
    data_dir: Path,
) -> None:
    # Unsetting the variable one day would bring the file's value back.
    write_toml(data_dir, 'access_log = "yes"\n')
    assert error(data_dir, {"LYCHGATE_ACCESS_LOG": "true"}).field == "access_log"


def test_typed_values_in_the_file_are_read(data_dir: Path) -> None:
    write_toml(
        data_dir,
        "session_ttl = 7200\nworkers = 2.0\naccess_log = true\nallow_insecure_http = false\n"
        "[limits]\nheader_timeout = 5\nidle_timeout = 2.5\n",
    )
    settings = load_settings(data_dir, {})
    assert (settings.session_ttl, settings.workers, settings.access_log) == (7200, 2, True)
    assert settings.allow_insecure_http is False
    assert (settings.limits.header_timeout, settings.limits.idle_timeout) == (5.0, 2.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("off", False),
    ],
)
def test_a_switch_from_a_variable_takes_the_usual_spellings(
    data_dir: Path, text: str, expected: bool
) -> None:
    assert load_settings(data_dir, {"LYCHGATE_ACCESS_LOG": text}).access_log is expected


@pytest.mark.parametrize("text", ["2", "", "enabled"])
def test_a_switch_from_a_variable_refuses_other_text(data_dir: Path, text: str) -> None:
    err = error(data_dir, {"LYCHGATE_ACCESS_LOG": text})
    assert err.field == "access_log"
    assert "in environment variable LYCHGATE_ACCESS_LOG" in str(err)


def test_numbers_from_variables_are_read_from_digits(data_dir: Path) -> None:
    env = {"LYCHGATE_SESSION_TTL": "7200", "LYCHGATE_LIMITS__HEADER_TIMEOUT": "2.5"}
    settings = load_settings(data_dir, env)
    assert (settings.session_ttl, settings.limits.header_timeout) == (7200, 2.5)


@pytest.mark.parametrize("text", ["true", "false", "yes"])
def test_a_number_from_a_variable_refuses_a_switchs_words(data_dir: Path, text: str) -> None:
    err = error(data_dir, {"LYCHGATE_WORKERS": text})
    assert err.field == "workers"
    assert "in environment variable LYCHGATE_WORKERS" in str(err)


def test_true_for_a_number_in_a_json_variable_is_refused(data_dir: Path) -> None:
    # JSON has real types too: {"header_timeout": true} was a one-second timeout.
    err = error(data_dir, {"LYCHGATE_LIMITS": '{"header_timeout": true}'})
    assert str(err) == (
        "limits.header_timeout: invalid value for 'limits.header_timeout' in environment "
        "variable LYCHGATE_LIMITS: expected a number, not true"
    )


def test_true_for_a_number_from_a_flag_is_refused(data_dir: Path) -> None:
    err = error(data_dir, {}, workers=True)
    assert (
        str(err)
        == "workers: invalid value for 'workers' from --workers: expected a number, not true"
    )


def test_a_number_for_a_switch_from_code_is_refused(data_dir: Path) -> None:
    err = error(data_dir, {}, access_log=1)
    assert "expected true or false, not 1" in str(err)


def test_a_check_across_settings_names_each_value_and_where_it_came_from(data_dir: Path) -> None:
    path = write_toml(data_dir, "session_ttl = 3600\n")
    err = error(data_dir, {"LYCHGATE_APP_TOKEN_TTL": "7200"})
    assert str(err) == (
        "invalid settings: app_token_ttl must not exceed session_ttl: app_token_ttl = 7200 in "
        f"environment variable LYCHGATE_APP_TOKEN_TTL, session_ttl = 3600 in {path}"
    )


def test_a_check_across_settings_names_a_flag_and_a_default(data_dir: Path) -> None:
    err = error(data_dir, {}, app_token_ttl=50000)
    assert str(err) == (
        "invalid settings: app_token_ttl must not exceed session_ttl: app_token_ttl = 50000 "
        "from --app-token-ttl, session_ttl = 43200 by default"
    )


def test_a_half_set_certificate_names_the_half_given(data_dir: Path) -> None:
    path = write_toml(data_dir, 'tls_key = "/etc/lychgate/key.pem"\n')
    assert str(error(data_dir, {})) == (
        "invalid settings: tls_cert and tls_key must be set together: tls_cert not set, "
        f'tls_key = "/etc/lychgate/key.pem" in {path}'
    )
