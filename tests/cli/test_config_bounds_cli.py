"""Out-of-range values at the command line: one line naming the field or the setting and
where it came from, never a traceback (OverflowError, SettingsError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lychgate.cli.main import app

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit code and output of ``lychgate ARGS``; fails on an exception the CLI let out."""
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, " ".join(result.output.replace("│", " ").split())  # help's box


@pytest.fixture
def d(data_dir: Path) -> str:
    where = str(data_dir)
    assert run("init", "--dir", where)[0] == 0
    return where


WIKI = ("--slug", "wiki", "--name", "Wiki", "--upstream", "http://127.0.0.1:3000")


@pytest.mark.parametrize("value", ["99999999999999999999999", "1125899906842625"])
def test_a_body_limit_past_1_pib_is_one_error(d: str, value: str) -> None:
    # Past SQLite's INTEGER it was an OverflowError from the store.
    assert run("app", "add", "--dir", d, *WIKI, "--max-body", value) == (
        1,
        "error: max_body_bytes: must be between 0 and 1125899906842624",
    )
    assert run("app", "add", "--dir", d, *WIKI)[0] == 0
    code, out = run("app", "update", "wiki", "--dir", d, "--max-body", "9223372036854775808")
    assert (code, out) == (1, "error: max_body_bytes: must be between 0 and 1125899906842624")
    assert run("app", "update", "wiki", "--dir", d, "--max-body", str(2**50))[0] == 0


def test_app_help_says_the_ranges() -> None:
    code, out = run("app", "add", "--help")
    assert code == 0
    assert "0 to 1125899906842624 (1 PiB)" in out
    assert "over 0, at most 3600" in out
    assert "at most 86400" in out


def test_token_mint_help_says_the_longest_ttl() -> None:
    code, out = run("token", "mint", "--help")
    assert code == 0
    assert "at most 34560000, 400 days" in out


@pytest.mark.parametrize("command", [("app", "list"), ("keys", "list"), ("gateway",)])
def test_a_nested_variable_that_is_not_json_is_a_config_error(
    d: str, command: tuple[str, ...]
) -> None:
    code, out = run(*command, "--dir", d, env={"LYCHGATE_LIMITS": "notjson"})
    assert code == 2
    assert out.startswith(
        "configuration error: limits: invalid value for 'limits' in environment variable "
        "LYCHGATE_LIMITS: not valid JSON"
    )


def test_a_session_ttl_past_400_days_is_refused_before_keys_rotate(d: str) -> None:
    # It was accepted, and `keys rotate` then crashed: date value out of range.
    code, out = run("keys", "rotate", "--dir", d, env={"LYCHGATE_SESSION_TTL": "10000000000000"})
    assert code == 2
    assert "session_ttl" in out
    assert "LYCHGATE_SESSION_TTL" in out


def test_a_bad_flag_is_blamed_on_the_flag(d: str) -> None:
    # With a good listen in lychgate.toml, the file was blamed for --listen's value.
    config = Path(d) / "lychgate.toml"
    config.write_text(config.read_text() + 'listen = "127.0.0.1:8080"\n')
    code, out = run("gateway", "--dir", d, "--listen", "nope")
    assert code == 2
    assert "invalid value for 'listen' from --listen: expected HOST:PORT" in out
    assert "lychgate.toml" not in out


def test_authz_blames_its_own_listen_flag(d: str) -> None:
    # Its --listen sets authz_listen: the error said "in settings", then "--authz-listen".
    code, out = run("authz", "--dir", d, "--listen", "https://x:1")
    assert code == 2
    assert "invalid value for 'authz_listen' from --listen:" in " ".join(out.split())


def test_data_dir_in_the_file_is_a_config_error(d: str) -> None:
    config = Path(d) / "lychgate.toml"
    config.write_text(config.read_text() + 'data_dir = "/elsewhere"\n')
    code, out = run("app", "list", "--dir", d)
    assert code == 2
    assert "data_dir: not a setting in" in out
    assert "chosen with --dir (or LYCHGATE_DATA_DIR)" in out
